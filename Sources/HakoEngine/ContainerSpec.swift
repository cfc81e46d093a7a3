import HakoImage
import HakoNetwork
import HakoRuntime
import HakoSecurity
import HakoSystem

/// What a container is, typed: what `create` takes. Its fillers parse their
/// own text at their edge — the CLI its flags (`HakoCLI`'s `RunFlags`), the
/// Docker API its JSON, the agent its service spec, `build` its Dockerfile
/// step — and the engine parses no user text again: it checks the values
/// against each other, the image and this host, and stores them.
public struct ContainerSpec: Sendable, Equatable {
    /// The image reference as given (a name, an id or id prefix).
    public var image: String
    /// nil: a generated name.
    public var name: String?
    public var process = Process()
    /// nil: the short id.
    public var hostname: String?
    /// Laid over the image's labels.
    public var labels: [String: String] = [:]
    public var autoRemove = false
    public var restart: RestartPolicy = .no
    public var namespaces = Namespaces()
    public var network: NetworkMode = .bridge
    public var networking = NetworkAttachment()
    /// Binds, volumes and tmpfs mounts, in order; the image's VOLUMEs are added at create.
    public var mounts: [MountRequest] = []
    /// Limits; device rates with their node's numbers already resolved.
    public var resources = ResourceLimits()
    public var isolation = Isolation()
    /// nil: the image's STOPSIGNAL, else SIGTERM.
    public var stopSignal: Int32?
    /// Seconds; nil: 10, -1: wait for ever.
    public var stopTimeout: Int?
    public var log = LogOptions()
    /// Ports the container offers besides its image's, as "PORT/PROTO" ("80/tcp").
    public var expose: [String] = []
    /// The size of /dev/shm in bytes (nil: 64 MiB, docker's default).
    public var shmSize: UInt64?
    /// Merged over the image's HEALTHCHECK (nil: the image's).
    public var healthCheck: HealthCheck?

    public init(image: String) { self.image = image }

    /// The program and how it runs.
    public struct Process: Sendable, Equatable {
        /// nil: the image's Cmd.
        public var command: [String]?
        /// nil: the image's entrypoint; []: none.
        public var entrypoint: [String]?
        /// "KEY=VALUE", laid over the image's in order (env files and
        /// pass-through variables resolved by the filler).
        public var env: [String] = []
        /// An absolute path; nil: the image's, else "/".
        public var workingDir: String?
        /// "name|uid[:group|gid]", resolved in the container's own files at start; nil: the image's.
        public var user: String?
        /// Supplementary groups besides the user's own, names or numbers.
        public var groupAdd: [String] = []
        public var tty = false
        /// Keep stdin open (-i).
        public var openStdin = false
        /// hako-init as PID 1, passing signals on and reaping orphans.
        public var initProcess = false

        public init() {}
    }

    public struct Namespaces: Sendable, Equatable {
        public var pid: NamespaceMode = .private
        public var uts: NamespaceMode = .private
        public var ipc: NamespaceMode = .private
        /// nil: Docker's default for the host, private on cgroup v2 and host on v1.
        public var cgroupns: NamespaceMode?

        public init() {}
    }

    /// The network a bridge-mode container joins and what it publishes.
    public struct NetworkAttachment: Sendable, Equatable {
        /// A user-defined network or "bridge"; nil: the default bridge.
        public var network: String?
        public var ip: IPv4Address?
        public var mac: MACAddress?
        public var aliases: [String] = []
        public var ports: [PortBinding] = []
        /// -P: every exposed port on a free host port.
        public var publishAll = false
        public var dns: [IPv4Address] = []
        public var dnsSearch: [String] = []
        public var dnsOptions: [String] = []
        public var extraHosts: [ContainerNetworking.ExtraHost] = []

        public init() {}
    }

    /// Hardening.
    public struct Isolation: Sendable, Equatable {
        /// Capability names ("NET_ADMIN", "cap_net_admin", "ALL"), normalised at create.
        public var capAdd: [String] = []
        public var capDrop: [String] = []
        public var privileged = false
        public var seccomp: Seccomp = .default
        public var noNewPrivileges = false
        /// No masked or read-only /proc and /sys paths (systempaths=unconfined).
        public var unmaskedPaths = false
        /// The security options as the user wrote them, for inspect.
        public var securityOpt: [String] = []
        public var readOnlyRoot = false
        public var sysctls: [IsolationConfig.Sysctl] = []
        /// A later limit of the same name replaces an earlier one.
        public var ulimits: [IsolationConfig.Ulimit] = []
        /// -1000…1000.
        public var oomScoreAdj: Int?
        public var devices: [IsolationConfig.DeviceMapping] = []
        public var deviceCgroupRules: [DeviceRule] = []
        /// nil: the engine's default (HAKO_USERNS, else the host's).
        public var userns: UsernsRequest?

        public init() {}

        public enum Seccomp: Sendable, Equatable {
            case `default`
            case unconfined
            /// A profile read from `path` (named in errors).
            case profile(SeccompProfile, path: String)
        }
    }

    /// The container's log file and the attributes `logs --details` shows.
    public struct LogOptions: Sendable, Equatable {
        /// Bytes per file before it rotates (at least 4 KiB).
        public var maxSize: UInt64 = 10 << 20
        /// Files kept, 1…100.
        public var maxFiles: UInt32 = 3
        /// labels, labels-regex, env, env-regex as given.
        public var attributes: [String: String] = [:]

        public init() {}
    }
}

/// `--userns`: the host's user namespace, or a slice of host ids of its own.
public enum UsernsRequest: Sendable, Equatable {
    case host
    case auto(size: UInt32)

    /// host, auto, auto:size=N — the flag's and HAKO_USERNS's syntax.
    public init(parsing s: String) throws {
        switch s {
        case "", "host": self = .host
        case "auto": self = .auto(size: IDRangeAllocator.defaultSize)
        default:
            guard s.hasPrefix("auto:size="), let n = UInt32(s.dropFirst("auto:size=".count)), n >= 1 else {
                throw HakoError(.invalidArgument("--userns"), "invalid --userns \"\(s)\": expected host, auto or auto:size=N")
            }
            self = .auto(size: n)
        }
    }
}

extension ResourceLimits {
    /// "0-2,4" → the ids it names (CPUs, memory nodes); nil when malformed.
    public static func idList(_ s: String) -> [Int]? {
        var out: [Int] = []
        for part in s.split(separator: ",", omittingEmptySubsequences: false) {
            let r = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(r.count), let a = Int(r[0]), a >= 0, let b = r.count == 2 ? Int(r[1]) : a, b >= a, b - a < 4096 else { return nil }
            out += Array(a...b)
        }
        return out.isEmpty ? nil : out
    }

    /// n × 10⁻⁹ as a decimal ("0.5", "2"), without floating point: nano CPUs as --cpus writes them.
    public static func decimalCPUs(_ nano: Int64) -> String {
        let scale: Int64 = 1_000_000_000
        let whole = nano / scale
        var frac = nano % scale
        guard frac > 0 else { return String(whole) }
        var digits = ""
        while frac > 0 {
            frac *= 10
            digits += String(frac / scale)
            frac %= scale
        }
        return "\(whole).\(digits)"
    }
}
