import HakoImage

/// When `run` and `create` pull their image: Docker's `--pull`.
public enum PullPolicy: String, Sendable, CaseIterable {
    /// Pull when the image is not here (the default).
    case missing
    /// Pull every time (layers already here are not downloaded again).
    case always
    /// Never pull: a missing image is an error.
    case never
}

/// How `run`/`create` get their image when it must be pulled.
public struct ImagePullOptions: Sendable {
    public var policy: PullPolicy = .missing
    /// "os/arch[/variant]"; nil: the host's.
    public var platform: String?
    public var tlsVerify = true
    /// Told about the pull (the CLI draws it on stderr).
    public var progress: (any ProgressSink)?

    public init(policy: PullPolicy = .missing, platform: String? = nil, tlsVerify: Bool = true, progress: (any ProgressSink)? = nil) {
        self.policy = policy
        self.platform = platform
        self.tlsVerify = tlsVerify
        self.progress = progress
    }
}
