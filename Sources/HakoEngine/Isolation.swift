import HakoRuntime
import HakoSecurity

/// A container's limits and hardening as stored in `config.json` (validated).
public struct IsolationConfig: Codable, Sendable, Equatable {
    public var limits = ResourceLimits()
    /// --cap-add / --cap-drop, normalised ("CAP_X" or "ALL").
    public var capAdd: [String] = []
    public var capDrop: [String] = []
    public var privileged = false
    public var seccomp: SeccompMode = .default
    public var noNewPrivileges = false
    /// --security-opt systempaths=unconfined: no masked or read-only /proc and /sys paths.
    public var unmaskedPaths = false
    public var readOnlyRoot = false
    public var sysctls: [Sysctl] = []
    public var ulimits: [Ulimit] = []
    public var oomScoreAdj: Int32?
    public var devices: [DeviceMapping] = []
    public var deviceCgroupRules: [DeviceRule] = []
    public var userns: Userns?
    /// --security-opt as given (for inspect).
    public var securityOpt: [String] = []

    public init() {}

    public enum SeccompMode: Codable, Sendable, Equatable {
        case `default`
        case unconfined
        /// A profile from a file, kept whole so the container does not depend on the file.
        case profile(SeccompProfile)
    }

    public struct Sysctl: Codable, Sendable, Equatable {
        public var key: String
        public var value: String

        public init(key: String, value: String) { self.key = key; self.value = value }
    }

    public struct Ulimit: Codable, Sendable, Equatable {
        public var name: String
        public var soft: Int64
        public var hard: Int64

        public init(name: String, soft: Int64, hard: Int64) { self.name = name; self.soft = soft; self.hard = hard }

        /// The names --ulimit takes and their RLIMIT_* numbers.
        public static let resources: [String: UInt32] = [
            "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7,
            "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
        ]
    }

    /// --device HOST[:CONTAINER][:PERMISSIONS]; the node's numbers are read at each start.
    public struct DeviceMapping: Codable, Sendable, Equatable {
        public var host: String
        public var container: String
        public var permissions: String

        public init(host: String, container: String, permissions: String) {
            self.host = host; self.container = container; self.permissions = permissions
        }
    }

    /// --userns auto: the container's own slice of host ids (assigned at create).
    public struct Userns: Codable, Sendable, Equatable {
        public var size: UInt32
        public var range: IDRange?
        /// The lower layers are shared and idmapped (false: the engine fell back).
        public var idmapped: Bool = true
    }
}

extension ContainerConfig {
    /// The container's limits and hardening; Docker's defaults when it has none stored.
    public var effectiveIsolation: IsolationConfig { isolation ?? IsolationConfig() }
}
