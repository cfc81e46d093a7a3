import HakoSystem

/// One mount a container asked for (-v, --mount, --tmpfs, or the image's VOLUME list).
public struct MountRequest: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case bind, volume, tmpfs }
    public var kind: Kind
    /// bind: an absolute host path; volume: the volume's name; tmpfs: "".
    public var source: String
    /// Absolute path inside the container.
    public var target: String
    public var readOnly: Bool = false
    /// An anonymous volume (removed with the container by `rm -v` and `--rm`).
    public var anonymous: Bool = false
    /// -v creates a missing host directory; --mount type=bind refuses it.
    public var createHostPath: Bool = false
    /// A new volume is not filled from the image.
    public var noCopy: Bool = false
    /// tmpfs size in bytes (0: the kernel's default) and mode.
    public var tmpfsSize: UInt64 = 0
    public var tmpfsMode: UInt32?
    public var tmpfsExec: Bool = false
    /// A bind mount's propagation (`-v SRC:DST:rshared`, `bind-propagation=`);
    /// nil: Docker's default, rprivate.
    public var propagation: BindPropagation?

    public init(kind: Kind, source: String, target: String) { self.kind = kind; self.source = source; self.target = target }
}

/// How mount and unmount events cross a bind mount (mount_namespaces(7)).
/// shared and slave need the source's mount to be shared (or, for slave, a
/// slave) on the host, as Docker requires: only then can events cross.
public enum BindPropagation: String, Codable, Sendable, CaseIterable {
    case `private`, rprivate, shared, rshared, slave, rslave

    public var recursive: Bool { self == .rprivate || self == .rshared || self == .rslave }
    /// Mounts made inside the container under the target appear on the host.
    public var sharesBack: Bool { self == .shared || self == .rshared }
    public var receives: Bool { self != .private && self != .rprivate }
}

/// A container's mounts, stored in its configuration.
public struct ContainerStorage: Codable, Sendable, Equatable {
    public var mounts: [MountRequest] = []
    public init() {}
}

extension BindPropagation {
    public static var allNames: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

extension ContainerStorage {
    /// Not a mount point: relative, "/" itself, or with a NUL.
    public static func invalidTarget(_ t: String) -> Bool {
        !t.hasPrefix("/") || FS.normalize(t) == "/" || t.contains("\0")
    }

    /// Checks the requests and adds the image's VOLUME list as anonymous volumes.
    static func make(_ requests: [MountRequest], imageVolumes: [String]) throws -> ContainerStorage? {
        var s = ContainerStorage()
        var seen = Set<String>()
        for var m in requests {
            func bad(_ why: String) -> HakoError { HakoError(.invalidArgument("--mount"), "invalid mount at \(m.target): \(why)") }
            if invalidTarget(m.target) { throw HakoError(.invalidArgument("--mount"), "invalid mount: the mount point \"\(m.target)\" must be an absolute path other than /") }
            m.target = FS.normalize(m.target)
            switch m.kind {
            case .bind:
                guard m.source.hasPrefix("/") else { throw bad("a bind's source must be an absolute host path") }
                guard m.createHostPath || FS.exists(m.source) else { throw bad("bind source path does not exist: \(m.source)") }
            case .volume:
                guard Volumes.isValidName(m.source) else { throw bad("\"\(m.source)\" is not a valid volume name") }
            case .tmpfs:
                guard m.source.isEmpty else { throw bad("a tmpfs mount has no source") }
            }
            if m.kind != .tmpfs && (m.tmpfsSize != 0 || m.tmpfsMode != nil) { throw bad("tmpfs options on a \(m.kind.rawValue) mount") }
            if m.kind != .bind && m.propagation != nil { throw bad("propagation on a \(m.kind.rawValue) mount") }
            if let mode = m.tmpfsMode, mode > 0o7777 { throw bad("tmpfs mode \(String(mode, radix: 8)) is not a mode") }
            if seen.contains(m.target) { throw HakoError(.invalidArgument("--mount"), "duplicate mount point: \(m.target)") }
            seen.insert(m.target)
            s.mounts.append(m)
        }
        for v in imageVolumes where !invalidTarget(v) && !seen.contains(FS.normalize(v)) {
            var m = MountRequest(kind: .volume, source: hexString(randomBytes(32)), target: FS.normalize(v))
            m.anonymous = true
            s.mounts.append(m)
            seen.insert(m.target)
        }
        return s.mounts.isEmpty ? nil : s
    }
}
