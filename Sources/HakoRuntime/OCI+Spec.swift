import HakoSystem

/// The OCI runtime specification's config.json (runtime-spec 1.x), the parts a
/// Linux runtime acts on. Decoded strictly: a field hako does not implement is
/// an error naming it (OCI+Decode.swift), never silently ignored.
public enum OCI {
    public static let specVersion = "1.2.0"

    public struct Spec: Sendable {
        public var ociVersion: String
        public var process: Process?
        public var root: Root?
        public var hostname: String?
        public var domainname: String?
        public var mounts: [Mount] = []
        public var hooks: Hooks = Hooks()
        public var annotations: [(String, String)] = []
        public var linux: Linux = Linux()
    }

    public struct Process: Sendable {
        public var terminal = false
        public var consoleSize: (height: UInt32, width: UInt32)?
        public var user = User()
        public var args: [String] = []
        public var env: [String] = []
        public var cwd: String = "/"
        public var capabilities: Capabilities?
        public var rlimits: [Rlimit] = []
        public var noNewPrivileges = false
        public var oomScoreAdj: Int32?
        public var apparmorProfile: String?
        public var selinuxLabel: String?
        public init() {}
    }

    public struct User: Sendable {
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        public var umask: UInt32?
        public var additionalGids: [UInt32] = []
    }

    public struct Capabilities: Sendable {
        public var bounding: [String] = []
        public var effective: [String] = []
        public var inheritable: [String] = []
        public var permitted: [String] = []
        public var ambient: [String] = []
        public init(bounding: [String] = [], effective: [String] = [], inheritable: [String] = [], permitted: [String] = [], ambient: [String] = []) {
            self.bounding = bounding; self.effective = effective; self.inheritable = inheritable; self.permitted = permitted; self.ambient = ambient
        }
    }

    public struct Rlimit: Sendable {
        public var type: String
        public var soft: UInt64
        public var hard: UInt64
    }

    public struct Root: Sendable {
        public var path: String
        public var readonly = false
    }

    public struct Mount: Sendable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String] = []
    }

    public struct Hook: Sendable {
        public var path: String
        public var args: [String] = []
        public var env: [String] = []
        public var timeout: Int?
        public init(path: String, args: [String] = [], env: [String] = [], timeout: Int? = nil) {
            self.path = path; self.args = args; self.env = env; self.timeout = timeout
        }
    }

    public struct Hooks: Sendable {
        public var prestart: [Hook] = []
        public var createRuntime: [Hook] = []
        public var createContainer: [Hook] = []
        public var startContainer: [Hook] = []
        public var poststart: [Hook] = []
        public var poststop: [Hook] = []
    }

    public struct Namespace: Sendable {
        public var type: String
        public var path: String?
    }

    public struct IDMapping: Sendable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32
    }

    public struct Device: Sendable {
        public var type: String
        public var path: String
        public var major: Int64
        public var minor: Int64
        public var fileMode: UInt32?
        public var uid: UInt32?
        public var gid: UInt32?
    }

    public struct DeviceRule: Sendable {
        public var allow: Bool
        public var type: String?
        public var major: Int64?
        public var minor: Int64?
        public var access: String?
    }

    public struct Memory: Sendable {
        public var limit: Int64?
        public var reservation: Int64?
        public var swap: Int64?
        public var kernel: Int64?
        public var kernelTCP: Int64?
        public var swappiness: UInt64?
        public var disableOOMKiller: Bool?
        public var useHierarchy: Bool?
        public var checkBeforeUpdate: Bool?
    }

    public struct CPU: Sendable {
        public var shares: UInt64?
        public var quota: Int64?
        public var burst: UInt64?
        public var period: UInt64?
        public var realtimeRuntime: Int64?
        public var realtimePeriod: UInt64?
        public var cpus: String?
        public var mems: String?
        public var idle: Int64?
    }

    public struct WeightDevice: Sendable {
        public var major: Int64
        public var minor: Int64
        public var weight: UInt16?
        public var leafWeight: UInt16?
    }

    public struct ThrottleDevice: Sendable {
        public var major: Int64
        public var minor: Int64
        public var rate: UInt64
    }

    public struct BlockIO: Sendable {
        public var weight: UInt16?
        public var leafWeight: UInt16?
        public var weightDevice: [WeightDevice] = []
        public var throttleReadBpsDevice: [ThrottleDevice] = []
        public var throttleWriteBpsDevice: [ThrottleDevice] = []
        public var throttleReadIOPSDevice: [ThrottleDevice] = []
        public var throttleWriteIOPSDevice: [ThrottleDevice] = []
    }

    public struct HugepageLimit: Sendable {
        public var pageSize: String
        public var limit: UInt64
    }

    public struct Resources: Sendable {
        public var devices: [DeviceRule] = []
        public var memory: Memory?
        public var cpu: CPU?
        public var pidsLimit: Int64?
        public var blockIO: BlockIO?
        public var hugepageLimits: [HugepageLimit] = []
        public var networkClassID: UInt32?
        public var networkPriorities: [(name: String, priority: UInt32)] = []
        public var unified: [(String, String)] = []
    }

    public struct SeccompArg: Sendable {
        public var index: UInt32
        public var value: UInt64
        public var valueTwo: UInt64
        public var op: String
    }

    public struct SeccompRule: Sendable {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt32?
        public var args: [SeccompArg] = []
    }

    public struct Seccomp: Sendable {
        public var defaultAction: String
        public var defaultErrnoRet: UInt32?
        public var architectures: [String] = []
        public var flags: [String] = []
        public var syscalls: [SeccompRule] = []
    }

    public struct Personality: Sendable {
        public var domain: String
        public var flags: [String] = []
    }

    public struct Linux: Sendable {
        public var namespaces: [Namespace] = []
        public var uidMappings: [IDMapping] = []
        public var gidMappings: [IDMapping] = []
        public var timeOffsets: [(clock: String, secs: Int64, nanosecs: UInt32)] = []
        public var devices: [Device] = []
        public var cgroupsPath: String?
        public var resources: Resources?
        public var rootfsPropagation: String?
        public var seccomp: Seccomp?
        public var sysctl: [(String, String)] = []
        public var maskedPaths: [String] = []
        public var readonlyPaths: [String] = []
        public var mountLabel: String?
        public var personality: Personality?
    }
}
