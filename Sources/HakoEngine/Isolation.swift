import HakoRuntime
import HakoSecurity

/// Resource limits and hardening as `run`/`create` were asked for them (the
/// flags' text, before anything is parsed or checked).
public struct IsolationOptions: Sendable, Equatable {
    public var cpus: String?
    public var cpuShares: Int?
    public var cpusetCpus: String?
    public var cpusetMems: String?
    public var memory: String?
    public var memoryHigh: String?
    public var memoryReservation: String?
    public var memorySwap: String?
    public var pidsLimit: Int?
    public var blkioWeight: Int?
    public var deviceReadBps: [String] = []
    public var deviceWriteBps: [String] = []
    public var deviceReadIOps: [String] = []
    public var deviceWriteIOps: [String] = []
    public var devices: [String] = []
    public var deviceCgroupRules: [String] = []
    public var capAdd: [String] = []
    public var capDrop: [String] = []
    public var securityOpt: [String] = []
    public var privileged = false
    public var readOnly = false
    public var sysctls: [String] = []
    public var ulimits: [String] = []
    public var oomScoreAdj: Int?
    /// "host", "auto", "auto:size=N"; nil: the engine's default (HAKO_USERNS).
    public var userns: String?

    public init() {}

    /// Only the resource flags were given (what `hako update` accepts).
    public var limitFlagsOnly: IsolationOptions {
        var o = IsolationOptions()
        o.cpus = cpus; o.cpuShares = cpuShares; o.cpusetCpus = cpusetCpus; o.cpusetMems = cpusetMems
        o.memory = memory; o.memoryHigh = memoryHigh; o.memoryReservation = memoryReservation; o.memorySwap = memorySwap
        o.pidsLimit = pidsLimit; o.blkioWeight = blkioWeight
        o.deviceReadBps = deviceReadBps; o.deviceWriteBps = deviceWriteBps
        o.deviceReadIOps = deviceReadIOps; o.deviceWriteIOps = deviceWriteIOps
        return o
    }
}

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
    }

    public struct Ulimit: Codable, Sendable, Equatable {
        public var name: String
        public var soft: Int64
        public var hard: Int64
    }

    /// --device HOST[:CONTAINER][:PERMISSIONS]; the node's numbers are read at each start.
    public struct DeviceMapping: Codable, Sendable, Equatable {
        public var host: String
        public var container: String
        public var permissions: String
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
