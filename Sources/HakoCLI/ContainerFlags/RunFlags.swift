#if canImport(Glibc)
import Glibc
#endif
import HakoEngine
import HakoImage
import HakoNetwork
import HakoRuntime
import HakoSystem

/// The text of `run`/`create`'s flags, as the user typed them, and its one
/// parse into the engine's typed `ContainerSpec` (`spec()`): every flag's
/// syntax is checked here, at the edge; the engine checks the values against
/// each other, the image and the host.
public struct RunFlags: Sendable, Equatable {
    public var image: String
    /// Arguments after the image; nil: the image's Cmd.
    public var command: [String]?
    /// --entrypoint; "" clears the image's entrypoint.
    public var entrypoint: String?
    public var env: [String] = []
    public var envFiles: [String] = []
    public var workingDir: String?
    public var user: String?
    public var hostname: String?
    public var labels: [String] = []
    public var name: String?
    public var tty = false
    public var interactive = false
    public var autoRemove = false
    public var restart: String = "no"
    public var pid: NamespaceMode = .private
    public var uts: NamespaceMode = .private
    public var ipc: NamespaceMode = .private
    /// nil: Docker's default for the host.
    public var cgroupns: NamespaceMode?
    public var network: NetworkMode = .bridge
    public var networking = Network()
    public var storage = Storage()
    public var stopSignal: String?
    public var stopTimeout: Int?
    public var logOptions: [String] = []
    /// --expose: PORT[/PROTO].
    public var expose: [String] = []
    /// --shm-size, already in bytes.
    public var shmSize: UInt64?
    public var groupAdd: [String] = []
    public var initProcess = false
    public var isolation = Isolation()
    /// `--health-*` and `--no-healthcheck`, parsed by `HealthFlags`.
    public var healthCheck: HealthCheck?

    public init(image: String) { self.image = image }

    /// The network flags.
    public struct Network: Sendable, Equatable {
        /// --network NAME (a user-defined network or "bridge"); nil: the default bridge.
        public var network: String?
        public var ip: String?
        public var mac: String?
        public var aliases: [String] = []
        public var publish: [String] = []
        public var publishAll = false
        public var dns: [String] = []
        public var dnsSearch: [String] = []
        public var dnsOptions: [String] = []
        public var addHosts: [String] = []

        public init() {}
    }

    /// The storage flags, parsed by `MountParser`.
    public struct Storage: Sendable, Equatable {
        public var volumes: [String] = []
        public var mounts: [String] = []
        public var tmpfs: [String] = []

        public init() {}
    }

    /// Resource limits (which `update` takes too) and hardening.
    public struct Isolation: Sendable, Equatable {
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

        /// Any of the resource flags was given (what `hako update` accepts).
        public var givesLimits: Bool {
            cpus != nil || cpuShares != nil || cpusetCpus != nil || cpusetMems != nil || memory != nil || memoryHigh != nil
                || memoryReservation != nil || memorySwap != nil || pidsLimit != nil || blkioWeight != nil
                || !deviceReadBps.isEmpty || !deviceWriteBps.isEmpty || !deviceReadIOps.isEmpty || !deviceWriteIOps.isEmpty
        }

        /// The resource flags → limits (nil fields for the rest); block devices' numbers are read here.
        public func limits() throws -> ResourceLimits {
            var l = ResourceLimits()
            if let s = cpus { l.nanoCPUs = try IsolationParser.cpus(s, online: max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
            if let s = cpuShares, s != 0 {
                guard (2...262_144).contains(s) else { throw HakoError(.invalidArgument("--cpu-shares"), "invalid --cpu-shares \(s): the range is 2 to 262144") }
                l.cpuShares = UInt64(s)
            }
            if let s = cpusetCpus { l.cpusetCpus = try IsolationParser.cpuset(s, flag: "--cpuset-cpus") }
            if let s = cpusetMems { l.cpusetMems = try IsolationParser.cpuset(s, flag: "--cpuset-mems") }
            if let s = memory { l.memory = try IsolationParser.bytes(s, flag: "--memory") }
            if let s = memoryHigh { l.memoryHigh = try IsolationParser.bytes(s, flag: "--memory-high") }
            if let s = memoryReservation { l.memoryReservation = try IsolationParser.bytes(s, flag: "--memory-reservation") }
            if let s = memorySwap { l.memorySwap = s == "-1" ? -1 : try IsolationParser.bytes(s, flag: "--memory-swap") }
            if let p = pidsLimit { l.pidsLimit = p <= 0 ? -1 : Int64(p) }
            if let w = blkioWeight, w != 0 {
                guard (10...1000).contains(w) else { throw HakoError(.invalidArgument("--blkio-weight"), "invalid --blkio-weight \(w): the range is 10 to 1000") }
                l.blkioWeight = UInt16(w)
            }
            func rates(_ list: [String], _ flag: String, bytes: Bool) throws -> [DeviceRate] {
                try list.map { s in
                    let (path, rate) = try IsolationParser.rate(s, flag: flag, bytes: bytes)
                    return try IsolationParser.deviceRate(path: path, rate: rate, flag: flag, text: s)
                }
            }
            l.deviceReadBps = try rates(deviceReadBps, "--device-read-bps", bytes: true)
            l.deviceWriteBps = try rates(deviceWriteBps, "--device-write-bps", bytes: true)
            l.deviceReadIOps = try rates(deviceReadIOps, "--device-read-iops", bytes: false)
            l.deviceWriteIOps = try rates(deviceWriteIOps, "--device-write-iops", bytes: false)
            return l
        }

        /// The hardening flags → the spec's hardening (a seccomp profile is read here).
        public func hardening() throws -> ContainerSpec.Isolation {
            var i = ContainerSpec.Isolation()
            i.capAdd = capAdd
            i.capDrop = capDrop
            i.privileged = privileged
            try IsolationParser.apply(securityOpt: securityOpt, to: &i)
            i.readOnlyRoot = readOnly
            i.sysctls = try sysctls.map(IsolationParser.sysctl)
            i.ulimits = try ulimits.map(IsolationParser.ulimit)
            i.oomScoreAdj = oomScoreAdj
            i.devices = try devices.map(IsolationParser.device)
            i.deviceCgroupRules = try deviceCgroupRules.map { try DeviceRule(parsing: $0) }
            i.userns = try userns.map { try UsernsRequest(parsing: $0) }
            return i
        }
    }

    /// The flags' one parse: every value's syntax, env files read, bare
    /// `--env KEY`s taken from this process's environment.
    public func spec() throws -> ContainerSpec {
        var s = ContainerSpec(image: image)
        s.name = name
        s.process.command = command
        s.process.entrypoint = entrypoint.map { $0.isEmpty ? [] : [$0] }
        var fileEnv: [String] = []
        for f in envFiles {
            let text: String
            do { text = try FS.readString(f) } catch { throw HakoError(.invalidArgument("--env-file"), "cannot read env file \(f)", cause: error) }
            fileEnv += try EnvFile.parse(text)
        }
        s.process.env = fileEnv + (try EnvFile.passThrough(env))
        s.restart = try RestartPolicy(parsing: restart)
        if let sig = stopSignal {
            guard let n = Signals.parse(sig) else { throw HakoError(.invalidArgument("--stop-signal"), "invalid stop signal \"\(sig)\"") }
            s.stopSignal = n
        }
        s.stopTimeout = stopTimeout
        for l in labels {
            let kv = l.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let k = kv.first, !k.isEmpty else { throw HakoError(.invalidArgument("--label"), "invalid label \"\(l)\"") }
            s.labels[k] = kv.count > 1 ? kv[1] : ""
        }
        s.hostname = hostname
        s.log = try RunFlags.logOptions(logOptions)
        s.process.workingDir = workingDir
        s.process.user = user
        s.process.tty = tty
        s.process.openStdin = interactive
        s.process.groupAdd = groupAdd
        s.process.initProcess = initProcess
        s.autoRemove = autoRemove
        s.namespaces.pid = pid
        s.namespaces.uts = uts
        s.namespaces.ipc = ipc
        s.namespaces.cgroupns = cgroupns
        s.network = network
        s.expose = try expose.map(RunFlags.exposedPort)
        s.shmSize = shmSize
        s.networking = try networking.attachment(mode: network)
        var mounts: [MountRequest] = []
        for v in storage.volumes { mounts.append(try MountParser.parseVolume(v)) }
        for m in storage.mounts { mounts.append(try MountParser.parseMount(m)) }
        for t in storage.tmpfs { mounts.append(try MountParser.parseTmpfs(t)) }
        s.mounts = mounts
        s.resources = try isolation.limits()
        s.isolation = try isolation.hardening()
        s.healthCheck = healthCheck
        return s
    }

    /// --expose PORT[/PROTO] → "PORT/proto".
    public static func exposedPort(_ e: String) throws -> String {
        guard PortBinding.exposed(e) != nil else { throw HakoError(.invalidArgument("--expose"), "invalid --expose \"\(e)\" (expected PORT[/tcp|/udp])") }
        return e.contains("/") ? e.lowercased() : e + "/tcp"
    }

    /// --log-opt KEY=VALUE: max-size, max-file; labels, labels-regex, env, env-regex.
    public static func logOptions(_ list: [String]) throws -> ContainerSpec.LogOptions {
        try logOptions(list.map { opt in
            let kv = opt.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw HakoError(.invalidArgument("--log-opt"), "invalid log option \"\(opt)\" (expected KEY=VALUE)") }
            return (kv[0], kv[1])
        })
    }

    /// Log options as key and value (the Docker API's LogConfig.Config).
    public static func logOptions(_ pairs: [(String, String)]) throws -> ContainerSpec.LogOptions {
        var out = ContainerSpec.LogOptions()
        for (key, value) in pairs {
            let kv = [key, value]
            switch kv[0] {
            case "max-size":
                guard let n = ByteSize.parse(kv[1]), n >= 4096 else { throw HakoError(.invalidArgument("--log-opt"), "invalid log option max-size=\(kv[1]) (at least 4k)") }
                out.maxSize = n
            case "max-file":
                guard let n = UInt32(kv[1]), n >= 1, n <= 100 else { throw HakoError(.invalidArgument("--log-opt"), "invalid log option max-file=\(kv[1]) (1 to 100)") }
                out.maxFiles = n
            case "labels", "env":
                out.attributes[kv[0]] = kv[1]
            case "labels-regex", "env-regex":
                do { _ = try Regex(kv[1]) } catch {
                    throw HakoError(.invalidArgument("--log-opt"), "invalid log option \(kv[0])=\(kv[1]): not a regular expression")
                }
                out.attributes[kv[0]] = kv[1]
            default:
                throw HakoError(.invalidArgument("--log-opt"), "unknown log option \"\(kv[0])\" (supported: max-size, max-file, labels, labels-regex, env, env-regex)")
            }
        }
        return out
    }

    /// --add-host HOST:IP (or HOST=IP; IP may be host-gateway).
    public static func extraHost(_ h: String) throws -> ContainerNetworking.ExtraHost {
        let sep = h.firstIndex(where: { $0 == ":" || $0 == "=" })
        guard let sep else { throw HakoError(.invalidArgument("--add-host"), "invalid --add-host \"\(h)\" (expected HOST:IP)") }
        let name = String(h[..<sep]), addr = String(h[h.index(after: sep)...])
        guard Engine.isValidHostname(name) else { throw HakoError(.invalidArgument("--add-host"), "invalid --add-host \"\(h)\": bad host name") }
        guard addr == "host-gateway" || IPv4Address(addr) != nil else {
            throw HakoError(.invalidArgument("--add-host"), "invalid --add-host \"\(h)\": \"\(addr)\" is not an IPv4 address")
        }
        return .init(name: name, address: addr)
    }

    /// --dns ADDRESS.
    public static func dnsServer(_ d: String) throws -> IPv4Address {
        guard let a = IPv4Address(d) else { throw HakoError(.invalidArgument("--dns"), "invalid --dns \"\(d)\": not an IPv4 address") }
        return a
    }

    /// --ip ADDRESS.
    public static func address(_ s: String) throws -> IPv4Address {
        guard let a = IPv4Address(s) else { throw HakoError(.invalidArgument("--ip"), "invalid --ip \"\(s)\": not an IPv4 address") }
        return a
    }

    /// --mac-address: a unicast, non-zero address.
    public static func macAddress(_ m: String) throws -> MACAddress {
        guard let a = MACAddress(m), !a.isMulticast, !a.isZero else { throw HakoError(.invalidArgument("--mac-address"), "invalid --mac-address \"\(m)\"") }
        return a
    }
}

extension RunFlags.Network {
    /// The network flags → the spec's attachment. Flags that only a bridge
    /// network takes are refused first for another mode, before their values are read.
    public func attachment(mode: NetworkMode) throws -> ContainerSpec.NetworkAttachment {
        if mode != .bridge, let what = asksForBridgeOnlyThings {
            throw HakoError(.invalidArgument(what), "conflicting options: \(what) and --network \(mode.rawValue)")
        }
        var n = ContainerSpec.NetworkAttachment()
        n.network = network
        for p in publish { n.ports += try PortBinding.parse(p) }
        n.publishAll = publishAll
        n.dns = try dns.map(RunFlags.dnsServer)
        n.dnsSearch = dnsSearch
        n.dnsOptions = dnsOptions
        n.extraHosts = try addHosts.map(RunFlags.extraHost)
        n.ip = try ip.map(RunFlags.address)
        n.mac = try mac.map(RunFlags.macAddress)
        n.aliases = aliases
        return n
    }

    var asksForBridgeOnlyThings: String? {
        if !publish.isEmpty || publishAll { return "publishing ports" }
        if ip != nil { return "--ip" }
        if mac != nil { return "--mac-address" }
        if !aliases.isEmpty { return "--network-alias" }
        return nil
    }
}
