#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoImage
import HakoRuntime
import HakoSecurity
import HakoSystem

extension Engine {
    /// `run`/`create`: the spec's limits and hardening → the stored configuration,
    /// checked against this host (devices exist, controllers can enforce the
    /// limits, a seccomp profile compiles) before anything is written.
    func makeIsolation(_ spec: ContainerSpec) throws -> IsolationConfig {
        let f = spec.isolation
        let ns = spec.namespaces
        var c = IsolationConfig()
        c.limits = try checkLimits(spec.resources)
        try validate(c.limits)
        c.capAdd = try CapabilityPolicy.normalize(f.capAdd, flag: "--cap-add")
        c.capDrop = try CapabilityPolicy.normalize(f.capDrop, flag: "--cap-drop")
        let beyond = CapabilityNames.mask(c.capAdd) & ~CapabilityNames.all
        if beyond != 0 {
            throw HakoError(.unsupported(missing: "\(CapabilityNames.names(beyond).joined(separator: ", ")) in hako's bounding set"), "cannot add \(CapabilityNames.names(beyond).joined(separator: ", ")): hako itself does not hold it (its bounding set lacks it), so no container can get it")
        }
        c.privileged = f.privileged
        c.noNewPrivileges = f.noNewPrivileges
        c.unmaskedPaths = f.unmaskedPaths
        c.securityOpt = f.securityOpt
        switch f.seccomp {
        case .default: c.seccomp = .default
        case .unconfined: c.seccomp = .unconfined
        case .profile(let profile, let path):
            // Compiling now refuses a bad profile at create, and warms the cache.
            let caps = CapabilityPolicy.capabilities(add: c.capAdd, drop: c.capDrop, privileged: c.privileged)
            do { _ = try seccompCompiler.filter(profile, capabilities: caps) } catch {
                throw HakoError(.invalidArgument("--security-opt"), "invalid seccomp profile \(path)", cause: error)
            }
            c.seccomp = .profile(profile)
        }
        c.readOnlyRoot = f.readOnlyRoot
        c.sysctls = try f.sysctls.map {
            try Engine.checkSysctl($0, ipcPrivate: ns.ipc != .host, utsPrivate: ns.uts != .host, networkPrivate: spec.network != .host)
        }
        for u in f.ulimits {
            try Engine.checkUlimit(u)
            c.ulimits.removeAll { $0.name == u.name }
            c.ulimits.append(u)
        }
        if let adj = f.oomScoreAdj {
            guard (-1000...1000).contains(adj) else { throw HakoError(.invalidArgument("--oom-score-adj"), "invalid --oom-score-adj \(adj): the range is -1000 to 1000") }
            c.oomScoreAdj = Int32(adj)
        }
        c.devices = f.devices
        for d in c.devices { _ = try Engine.deviceNode(d.host, flag: "--device") }
        c.deviceCgroupRules = f.deviceCgroupRules
        let engineDefault = Engine.environment("HAKO_USERNS")
        let userns = try f.userns ?? UsernsRequest(parsing: engineDefault ?? "host")
        if case .auto(let size) = userns {
            c.userns = .init(size: size)
            // A host namespace belongs to the host's root; so does a privileged container.
            let hint = f.userns == nil ? " (HAKO_USERNS=\(engineDefault ?? "") makes it the default; give --userns host)" : ""
            let shared = [("--pid", ns.pid == .host), ("--network", spec.network == .host), ("--ipc", ns.ipc == .host), ("--uts", ns.uts == .host)]
            if let (flag, _) = shared.first(where: { $0.1 }) {
                throw HakoError(.invalidArgument("--userns"), "conflicting options: --userns auto and \(flag) host\(hint)")
            }
            if c.privileged { throw HakoError(.invalidArgument("--userns"), "conflicting options: --userns auto and --privileged\(hint)") }
        }
        // Limits this host cannot enforce are refused, never ignored.
        try makeCgroupDriver(host: cgroupHost, parent: cgroupParent).check(c.limits)
        return c
    }

    /// Sysctls that belong to a namespace of the container's own: IPC, UTS, network.
    public static func checkSysctl(_ s: IsolationConfig.Sysctl, ipcPrivate: Bool, utsPrivate: Bool, networkPrivate: Bool) throws -> IsolationConfig.Sysctl {
        func fail(_ why: String) -> HakoError { HakoError(.invalidArgument("--sysctl"), "invalid --sysctl \"\(s.key)=\(s.value)\": \(why)") }
        let key = s.key
        guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }), !key.contains(".."),
              !s.value.contains("\n"), !s.value.contains("\0") else { throw fail("bad key or value") }
        let ipc: Set<String> = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]
        if ipc.contains(key) || key.hasPrefix("fs.mqueue.") {
            guard ipcPrivate else { throw fail("it belongs to the IPC namespace, which is shared with the host (--ipc host)") }
        } else if key == "kernel.domainname" || key == "kernel.hostname" {
            guard utsPrivate else { throw fail("it belongs to the UTS namespace, which is shared with the host (--uts host)") }
        } else if key.hasPrefix("net.") {
            guard networkPrivate else { throw fail("it belongs to the network namespace, which is shared with the host (--network host)") }
        } else {
            throw fail("not a namespaced sysctl: it would change the whole host (allowed: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, kernel.domainname, net.*)")
        }
        return s
    }

    /// A resource limit's name and values (-1: unlimited).
    static func checkUlimit(_ u: IsolationConfig.Ulimit) throws {
        func fail(_ why: String) -> HakoError { HakoError(.invalidArgument("--ulimit"), "invalid --ulimit \"\(u.name)=\(u.soft):\(u.hard)\": \(why)") }
        guard IsolationConfig.Ulimit.resources[u.name] != nil else {
            throw fail("NAME is one of \(IsolationConfig.Ulimit.resources.keys.sorted().joined(separator: ", "))")
        }
        guard u.soft >= -1, u.hard >= -1 else { throw fail("limits are numbers (-1: unlimited)") }
        if u.hard != -1 && (u.soft == -1 || u.soft > u.hard) { throw fail("the soft limit is above the hard limit") }
    }

    func duplicate(_ items: [String]) -> String? {
        var seen = Set<String>()
        for i in items { if !seen.insert(i).inserted { return i } }
        return nil
    }

    var seccompCompiler: SeccompCompiler { SeccompCompiler(cacheDirectory: paths.root + "/seccomp") }

    public static func readSeccompProfile(_ path: String) throws -> SeccompProfile {
        let bytes: [UInt8]
        do { bytes = try FS.readFile(path) } catch { throw HakoError(.invalidArgument("--security-opt"), "cannot read seccomp profile \(path)", cause: error) }
        do {
            return try JSONDecoder().decode(SeccompProfile.self, from: Data(bytes))
        } catch {
            throw HakoError(.invalidArgument("--security-opt"), "invalid seccomp profile \(path): not Docker's JSON profile format (\(error))")
        }
    }

    /// The spec's limits checked on their own and against this host: the CPUs
    /// online, the CPU and memory nodes that exist. Their text was parsed by the filler.
    func checkLimits(_ l: ResourceLimits) throws -> ResourceLimits {
        if let n = l.nanoCPUs {
            let online = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            let s = ResourceLimits.decimalCPUs(n)
            guard n >= 10_000_000 else { throw HakoError(.invalidArgument("--cpus"), "invalid --cpus \"\(s)\": the minimum is 0.01") }
            guard n <= Int64(online) * 1_000_000_000 else {
                throw HakoError(.invalidArgument("--cpus"), "invalid --cpus \"\(s)\": range of CPUs is from 0.01 to \(online).00, as there are only \(online) CPUs available")
            }
        }
        if let s = l.cpuShares, !(2...262_144).contains(s) {
            throw HakoError(.invalidArgument("--cpu-shares"), "invalid --cpu-shares \(s): the range is 2 to 262144")
        }
        if let s = l.cpusetCpus {
            try Engine.checkCPUSet(s, flag: "--cpuset-cpus", available: try? FS.readString("/sys/devices/system/cpu/online"))
        }
        if let s = l.cpusetMems {
            try Engine.checkCPUSet(s, flag: "--cpuset-mems", available: (try? FS.readString("/sys/devices/system/node/online")) ?? "0")
        }
        if let w = l.blkioWeight, !(10...1000).contains(w) {
            throw HakoError(.invalidArgument("--blkio-weight"), "invalid --blkio-weight \(w): the range is 10 to 1000")
        }
        if let p = l.pidsLimit, p == 0 || p < -1 { throw HakoError(.invalidArgument("--pids-limit"), "invalid --pids-limit \(p)") }
        return l
    }

    /// --cpuset-cpus / --cpuset-mems: the list must name only available ids.
    static func checkCPUSet(_ s: String, flag: String, available: String?) throws {
        guard let wanted = ResourceLimits.idList(s) else { throw HakoError(.invalidArgument(flag), "invalid \(flag) \"\(s)\": expected a list such as 0-2,4") }
        if let available, let have = ResourceLimits.idList(available.trimmed) {
            let missing = Set(wanted).subtracting(have)
            if !missing.isEmpty {
                let what = flag == "--cpuset-cpus" ? "CPUs" : "memory nodes"
                throw HakoError(.invalidArgument(flag), "invalid \(flag) \"\(s)\": requested \(what) are not available - requested \(s), available: \(available.trimmed)")
            }
        }
    }

    /// A block device's rate limit (--device-read-bps and friends): the
    /// node's numbers read here. `text` is what the user wrote, for the error.
    public static func deviceRate(path: String, rate: UInt64, flag: String, text: String) throws -> DeviceRate {
        let node = try Engine.deviceNode(path, flag: flag)
        guard node.type == UInt8(ascii: "b") else { throw HakoError(.invalidArgument(flag), "invalid \(flag) \"\(text)\": \(path) is not a block device") }
        return DeviceRate(path: path, major: node.major, minor: node.minor, rate: rate)
    }

    /// Rules between limits, as Docker states them.
    func validate(_ l: ResourceLimits) throws {
        let minimum: Int64 = 6 << 20
        if let m = l.memory, m < minimum { throw HakoError(.invalidArgument("--memory"), "invalid --memory: the minimum memory limit allowed is 6MB") }
        if let h = l.memoryHigh {
            if h < minimum { throw HakoError(.invalidArgument("--memory-high"), "invalid --memory-high: the minimum is 6MB") }
            if let m = l.memory, h > m { throw HakoError(.invalidArgument("--memory-high"), "invalid --memory-high: it must not be above --memory") }
        }
        if let r = l.memoryReservation, let m = l.memory, r > m {
            throw HakoError(.invalidArgument("--memory-reservation"), "invalid --memory-reservation: the memory limit should be larger than the memory reservation")
        }
        if let s = l.memorySwap, s != -1 {
            guard let m = l.memory else { throw HakoError(.invalidArgument("--memory-swap"), "invalid --memory-swap: it needs --memory as well (memory plus swap)") }
            if s < m { throw HakoError(.invalidArgument("--memory-swap"), "invalid --memory-swap: the memory+swap limit should be at least the memory limit") }
        }
        if l.memoryHigh != nil && l.memoryReservation != nil && cgroupHost.mode != .unified {
            throw HakoError(.invalidArgument("--memory-high"), "conflicting options: --memory-high and --memory-reservation both become memory.soft_limit_in_bytes on cgroup v1; give one")
        }
    }

    /// The device node at a host path: its type and numbers (and mode, owner).
    public static func deviceNode(_ path: String, flag: String) throws -> DeviceNode {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw HakoError(.invalidArgument(flag), "invalid \(flag) \(path)", cause: SystemError("stat", path))
        }
        let fmt = st.st_mode & S_IFMT
        guard fmt == S_IFCHR || fmt == S_IFBLK else { throw HakoError(.invalidArgument(flag), "invalid \(flag) \(path): not a device node") }
        let dev = UInt64(st.st_rdev)
        let major = UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff)))
        let minor = UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff)))
        return DeviceNode(path: path, type: UInt8(ascii: fmt == S_IFBLK ? "b" : "c"), major: major, minor: minor,
                          mode: UInt32(st.st_mode & 0o7777), uid: st.st_uid, gid: st.st_gid)
    }
}
