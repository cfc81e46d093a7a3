import HakoSystem

/// The runtime defaults of an image: the "config" section of an OCI image
/// configuration, with Docker's capitalised JSON keys. Every field is
/// optional; absent and `null` both decode to nil, and nil is not encoded.
public struct ImageConfig: Codable, Sendable, Equatable {
    /// "user", "uid", "user:group" or "uid:gid".
    public var user: String?
    /// "80/tcp", "53/udp" (JSON: an object whose keys are the ports).
    public var exposedPorts: [String]?
    /// "KEY=value".
    public var env: [String]?
    public var entrypoint: [String]?
    public var cmd: [String]?
    /// Mount points for anonymous volumes (JSON: an object whose keys are the paths).
    public var volumes: [String]?
    public var workingDir: String?
    public var labels: [String: String]?
    /// "SIGTERM", "15".
    public var stopSignal: String?
    /// HEALTHCHECK (Docker's images and OCI images built by Docker carry it).
    public var healthcheck: HealthCheck?
    /// Dockerfile SHELL: the shell-form command prefix of RUN, CMD and ENTRYPOINT.
    public var shell: [String]?
    /// Dockerfile ONBUILD: instructions run by a build that starts FROM this image.
    public var onBuild: [String]?

    public init(user: String? = nil, exposedPorts: [String]? = nil, env: [String]? = nil, entrypoint: [String]? = nil,
                cmd: [String]? = nil, volumes: [String]? = nil, workingDir: String? = nil,
                labels: [String: String]? = nil, stopSignal: String? = nil, healthcheck: HealthCheck? = nil) {
        self.user = user
        self.exposedPorts = exposedPorts
        self.env = env
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.volumes = volumes
        self.workingDir = workingDir
        self.labels = labels
        self.stopSignal = stopSignal
        self.healthcheck = healthcheck
    }

    enum CodingKeys: String, CodingKey {
        case user = "User"
        case exposedPorts = "ExposedPorts"
        case env = "Env"
        case entrypoint = "Entrypoint"
        case cmd = "Cmd"
        case volumes = "Volumes"
        case workingDir = "WorkingDir"
        case labels = "Labels"
        case stopSignal = "StopSignal"
        case healthcheck = "Healthcheck"
        case shell = "Shell"
        case onBuild = "OnBuild"
    }

    /// `{}`: the value of each key in ExposedPorts and Volumes.
    private struct Empty: Codable {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        user = try c.decodeIfPresent(String.self, forKey: .user)
        exposedPorts = try c.decodeIfPresent([String: Empty].self, forKey: .exposedPorts).map { $0.keys.sorted() }
        env = try c.decodeIfPresent([String].self, forKey: .env)
        entrypoint = try c.decodeIfPresent([String].self, forKey: .entrypoint)
        cmd = try c.decodeIfPresent([String].self, forKey: .cmd)
        volumes = try c.decodeIfPresent([String: Empty].self, forKey: .volumes).map { $0.keys.sorted() }
        workingDir = try c.decodeIfPresent(String.self, forKey: .workingDir)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels)
        stopSignal = try c.decodeIfPresent(String.self, forKey: .stopSignal)
        healthcheck = try c.decodeIfPresent(HealthCheck.self, forKey: .healthcheck)
        shell = try c.decodeIfPresent([String].self, forKey: .shell)
        onBuild = try c.decodeIfPresent([String].self, forKey: .onBuild)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(user, forKey: .user)
        try c.encodeIfPresent(exposedPorts.map { Dictionary(uniqueKeysWithValues: Set($0).map { ($0, Empty()) }) },
                              forKey: .exposedPorts)
        try c.encodeIfPresent(env, forKey: .env)
        try c.encodeIfPresent(entrypoint, forKey: .entrypoint)
        try c.encodeIfPresent(cmd, forKey: .cmd)
        try c.encodeIfPresent(volumes.map { Dictionary(uniqueKeysWithValues: Set($0).map { ($0, Empty()) }) },
                              forKey: .volumes)
        try c.encodeIfPresent(workingDir, forKey: .workingDir)
        try c.encodeIfPresent(labels, forKey: .labels)
        try c.encodeIfPresent(stopSignal, forKey: .stopSignal)
        try c.encodeIfPresent(healthcheck, forKey: .healthcheck)
        try c.encodeIfPresent(shell, forKey: .shell)
        try c.encodeIfPresent(onBuild, forKey: .onBuild)
    }
}
