/// A Compose file (format 3.x) as `docker stack deploy` reads it, after
/// interpolation and merging. Optional fields are those a later file may
/// leave out without clearing (Docker's merge: a value that is not set does
/// not override).
public struct ComposeProject: Sendable, Equatable {
    public var version: String?
    public var services: [String: ComposeService] = [:]
    public var volumes: [String: ComposeVolume] = [:]
    public var networks: [String: ComposeNetwork] = [:]
    public var secrets: [String: ComposeObject] = [:]
    public var configs: [String: ComposeObject] = [:]
    /// Top-level `x-*` fields, kept as written.
    public var extensions: [String: YAMLNode] = [:]

    public init() {}

    public var serviceNames: [String] { services.keys.sorted() }
}

/// A key that `docker stack deploy` also ignores (`build`, `container_name`,
/// `depends_on`, `restart`, …): reported, not an error.
public struct IgnoredKey: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    /// "services.web.build".
    public var path: String

    public var description: String { "\(file):\(line): \(path) is ignored by stack deploy" }
}

public struct ComposeService: Sendable, Equatable {
    public var name: String
    public var image: String?
    /// nil: the image's command.
    public var command: [String]?
    /// nil: the image's entrypoint; []: none.
    public var entrypoint: [String]?
    /// `environment` (list or map), with bare names taken from the environment.
    public var environment: [String: String] = [:]
    /// `env_file` paths, resolved against the project directory; their
    /// variables are in `environment` once loaded (what `environment` sets wins).
    public var envFiles: [String] = []
    public var ports: [ComposePort] = []
    public var volumes: [ComposeMount] = []
    /// Network name → aliases; empty: the stack's default network.
    public var networks: [String: [String]] = [:]
    public var secrets: [ComposeFileReference] = []
    public var configs: [ComposeFileReference] = []
    public var healthcheck: ComposeHealthcheck?
    /// Container labels.
    public var labels: [String: String] = [:]
    public var user: String?
    public var workingDir: String?
    public var hostname: String?
    public var initProcess: Bool?
    public var readOnly: Bool?
    /// Seconds.
    public var stopGracePeriod: Double?
    public var stopSignal: String?
    public var sysctls: [String: String] = [:]
    public var devices: [ComposeDevice] = []
    public var capAdd: [String] = []
    public var capDrop: [String] = []
    public var dns: [String] = []
    public var dnsSearch: [String] = []
    public var deploy = ComposeDeploy()

    public init(name: String) { self.name = name }
}

public struct ComposePort: Sendable, Equatable, Hashable {
    public enum Mode: String, Sendable { case ingress, host }
    public var target: Int
    /// nil: none given (Swarm picks one).
    public var published: Int?
    public var proto: String
    public var mode: Mode
    /// The short syntax's `HOST_IP:` part.
    public var hostIP: String?

    public init(target: Int, published: Int? = nil, proto: String = "tcp", mode: Mode = .ingress, hostIP: String? = nil) {
        self.target = target
        self.published = published
        self.proto = proto
        self.mode = mode
        self.hostIP = hostIP
    }
}

public struct ComposeMount: Sendable, Equatable {
    public enum Kind: String, Sendable { case volume, bind, tmpfs }
    public var type: Kind
    /// A volume's name as written in the file (nil: anonymous), or a bind's
    /// host path made absolute against the project directory.
    public var source: String?
    public var target: String
    public var readOnly: Bool
    /// bind: rprivate, private, rshared, shared, rslave, slave.
    public var propagation: String?
    /// volume: do not copy the image's content into a new volume.
    public var noCopy: Bool
    /// tmpfs: bytes; nil: the kernel's default.
    public var tmpfsSize: Int64?

    public init(type: Kind, source: String?, target: String, readOnly: Bool = false) {
        self.type = type
        self.source = source
        self.target = target
        self.readOnly = readOnly
        propagation = nil
        noCopy = false
        tmpfsSize = nil
    }
}

/// A service's use of a secret or config.
public struct ComposeFileReference: Sendable, Equatable {
    public var source: String
    /// A secret's file name under /run/secrets, or a config's path; nil: the default.
    public var target: String?
    public var uid: String?
    public var gid: String?
    public var mode: UInt32?

    public init(source: String, target: String? = nil) {
        self.source = source
        self.target = target
    }
}

public struct ComposeDevice: Sendable, Equatable {
    public var host: String
    public var container: String
    /// "rwm" and its subsets.
    public var permissions: String
}

public struct ComposeHealthcheck: Sendable, Equatable {
    /// ["CMD", …], ["CMD-SHELL", "…"] or ["NONE"]; nil: the image's.
    public var test: [String]?
    public var interval: Double?
    public var timeout: Double?
    public var startPeriod: Double?
    /// Seconds between checks during the start period (Compose 3.x files as Docker 25+ reads them).
    public var startInterval: Double?
    public var retries: Int?
    public var disable: Bool

    public init() {
        test = nil
        disable = false
    }
}

public struct ComposeDeploy: Sendable, Equatable {
    public enum Mode: String, Sendable { case replicated, global, replicatedJob = "replicated-job", globalJob = "global-job" }
    public var mode: Mode?
    public var replicas: Int?
    /// Service labels (not the containers').
    public var labels: [String: String] = [:]
    public var constraints: [String] = []
    /// `spread` descriptors ("node.labels.rack").
    public var preferences: [String] = []
    public var maxReplicasPerNode: Int?
    public var limits = ComposeResources()
    public var reservations = ComposeResources()
    public var restartPolicy = ComposeRestartPolicy()
    public var updateConfig = ComposeUpdateConfig()
    public var rollbackConfig = ComposeUpdateConfig()

    public init() {}
}

public struct ComposeResources: Sendable, Equatable {
    public var cpus: Double?
    public var memory: Int64?
    public var pids: Int?
    public init() {}
}

public struct ComposeRestartPolicy: Sendable, Equatable {
    public enum Condition: String, Sendable { case none, onFailure = "on-failure", any }
    public var condition: Condition?
    public var delay: Double?
    public var maxAttempts: Int?
    public var window: Double?
    public init() {}
}

public struct ComposeUpdateConfig: Sendable, Equatable {
    public enum FailureAction: String, Sendable { case `continue`, rollback, pause }
    public enum Order: String, Sendable { case stopFirst = "stop-first", startFirst = "start-first" }
    public var parallelism: Int?
    public var delay: Double?
    public var failureAction: FailureAction?
    public var monitor: Double?
    public var maxFailureRatio: Double?
    public var order: Order?
    public init() {}
}

public struct ComposeVolume: Sendable, Equatable {
    public var driver: String?
    public var driverOpts: [String: String] = [:]
    public var external = false
    /// The volume's real name; nil: STACK_KEY (or KEY when external).
    public var name: String?
    public var labels: [String: String] = [:]
    public init() {}
}

/// A top-level network: a cluster network (Swarm's overlay), the only
/// driver a stack's networks have (the loader refuses others with their line).
public struct ComposeNetwork: Sendable, Equatable {
    public var external = false
    /// The network's real name; nil: STACK_KEY (or KEY when external).
    public var name: String?
    public var attachable = false
    public var labels: [String: String] = [:]
    /// `ipam.config[0].subnet` (a cluster network has one subnet); nil: the coordinator's pool.
    public var subnet: String?
    public init() {}
}

/// A top-level secret or config: its content from `file` (resolved against
/// the project directory) or already in the cluster (`external`).
public struct ComposeObject: Sendable, Equatable {
    public var file: String?
    public var external = false
    public var name: String?
    public var labels: [String: String] = [:]
    public init() {}
}
