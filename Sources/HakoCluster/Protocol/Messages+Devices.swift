extension MessageType {
    /// Coordinator → agent: the host device paths the services name.
    public static let devices = "devices"
    /// Agent → coordinator: the host devices the node has, after a `devices` request or a change.
    public static let devicesReport = "devices.report"
}

/// `devices` (notification): every host device path a service names
/// (`--device`, Compose `devices:`), sent to each node in session when the
/// set changes and at the start of each session. The agent answers with
/// `devices.report` when what it has changed.
public struct DeviceRequest: Codable, Sendable, Equatable {
    public var paths: [String]

    public init(paths: [String]) { self.paths = paths }

    /// Paths asked about at most: the coordinator sends the first ones
    /// (sorted), an agent looks at no more, and a report holds no more.
    public static let maxPaths = 256
    /// A path's bytes at most (PATH_MAX less its terminating NUL).
    public static let maxPathBytes = 4095

    /// Whether a device path may be asked about and reported: absolute, no
    /// `..` component, no NUL or newline, at most `maxPathBytes`.
    public static func isAcceptable(_ path: String) -> Bool {
        path.hasPrefix("/") && path.utf8.count <= maxPathBytes
            && !path.utf8.contains(0) && !path.utf8.contains(0x0a)
            && !path.split(separator: "/").contains("..")
    }
}

/// `devices.report` (request): the host devices the node has, among those
/// its agent.toml `devices` names and those the last `devices` asked about
/// (less its `deny_devices`); it replaces what the node reported before.
public struct DeviceReport: Codable, Sendable, Equatable {
    public var sessionID: String
    public var devices: [String]

    public init(sessionID: String, devices: [String]) {
        self.sessionID = sessionID
        self.devices = devices
    }
}
