#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoImage
import HakoRuntime
import HakoSecurity
import HakoSystem

extension Engine {
    /// `run`/`create`: the limit and hardening flags → the stored configuration,
    /// checked against this host (devices exist, controllers can enforce the
    /// limits, a seccomp profile compiles) before anything is written.
    func makeIsolation(_ o: RunOptions) throws -> IsolationConfig {
        let f = o.isolation
        var c = IsolationConfig()
        c.limits = try makeLimits(f)
        try validate(c.limits)
        c.capAdd = try CapabilityPolicy.normalize(f.capAdd, flag: "--cap-add")
        c.capDrop = try CapabilityPolicy.normalize(f.capDrop, flag: "--cap-drop")
        let beyond = CapabilityNames.mask(c.capAdd) & ~CapabilityNames.all
        if beyond != 0 {
            throw HakoError(.failed, "cannot add \(CapabilityNames.names(beyond).joined(separator: ", ")): hako itself does not hold it (its bounding set lacks it), so no container can get it")
        }
        c.privileged = f.privileged
        let sec = try IsolationParser.securityOptions(f.securityOpt)
        c.noNewPrivileges = sec.noNewPrivileges
        c.unmaskedPaths = sec.unmaskedPaths
        c.securityOpt = f.securityOpt
        switch sec.seccomp {
        case .default: c.seccomp = .default
        case .unconfined: c.seccomp = .unconfined
        case .file(let path):
            let profile = try Engine.readSeccompProfile(path)
            // Compiling now refuses a bad profile at create, and warms the cache.
            let caps = CapabilityPolicy.capabilities(add: c.capAdd, drop: c.capDrop, privileged: c.privileged)
            do { _ = try seccompCompiler.filter(profile, capabilities: caps) } catch {
                throw HakoError(.failed, "invalid seccomp profile \(path)", cause: error)
            }
            c.seccomp = .profile(profile)
        }
        c.readOnlyRoot = f.readOnly
        c.sysctls = try f.sysctls.map {
            try IsolationParser.sysctl($0, ipcPrivate: o.ipc != .host, utsPrivate: o.uts != .host, networkPrivate: o.network != .host)
        }
        for u in try f.ulimits.map(IsolationParser.ulimit) {
            c.ulimits.removeAll { $0.name == u.name }
            c.ulimits.append(u)
        }
        if let adj = f.oomScoreAdj {
            guard (-1000...1000).contains(adj) else { throw HakoError(.failed, "invalid --oom-score-adj \(adj): the range is -1000 to 1000") }
            c.oomScoreAdj = Int32(adj)
        }
        c.devices = try f.devices.map(IsolationParser.device)
        for d in c.devices { _ = try Engine.deviceNode(d.host, flag: "--device") }
        c.deviceCgroupRules = try f.deviceCgroupRules.map { try DeviceRule(parsing: $0) }
        let engineDefault = Engine.environment("HAKO_USERNS")
        c.userns = try IsolationParser.userns(f.userns ?? engineDefault ?? "host")
        if c.userns != nil {
            // A host namespace belongs to the host's root; so does a privileged container.
            let hint = f.userns == nil ? " (HAKO_USERNS=\(engineDefault ?? "") makes it the default; give --userns host)" : ""
            let shared = [("--pid", o.pid == .host), ("--network", o.network == .host), ("--ipc", o.ipc == .host), ("--uts", o.uts == .host)]
            if let (flag, _) = shared.first(where: { $0.1 }) {
                throw HakoError(.failed, "conflicting options: --userns auto and \(flag) host\(hint)")
            }
            if c.privileged { throw HakoError(.failed, "conflicting options: --userns auto and --privileged\(hint)") }
        }
        // Limits this host cannot enforce are refused, never ignored.
        try makeCgroupDriver(host: cgroupHost, parent: cgroupParent).check(c.limits)
        return c
    }

    func duplicate(_ items: [String]) -> String? {
        var seen = Set<String>()
        for i in items { if !seen.insert(i).inserted { return i } }
        return nil
    }

    var seccompCompiler: SeccompCompiler { SeccompCompiler(cacheDirectory: paths.root + "/seccomp") }

    static func readSeccompProfile(_ path: String) throws -> SeccompProfile {
        let bytes: [UInt8]
        do { bytes = try FS.readFile(path) } catch { throw HakoError(.failed, "cannot read seccomp profile \(path)", cause: error) }
        do {
            return try JSONDecoder().decode(SeccompProfile.self, from: Data(bytes))
        } catch {
            throw HakoError(.failed, "invalid seccomp profile \(path): not Docker's JSON profile format (\(error))")
        }
    }

    /// The resource flags that were given → limits (nil fields for the rest).
    func makeLimits(_ f: IsolationOptions) throws -> ResourceLimits {
        var l = ResourceLimits()
        if let s = f.cpus { l.nanoCPUs = try IsolationParser.cpus(s, online: max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
        if let s = f.cpuShares, s != 0 {
            guard (2...262_144).contains(s) else { throw HakoError(.failed, "invalid --cpu-shares \(s): the range is 2 to 262144") }
            l.cpuShares = UInt64(s)
        }
        if let s = f.cpusetCpus {
            l.cpusetCpus = try IsolationParser.cpuset(s, flag: "--cpuset-cpus", available: try? FS.readString("/sys/devices/system/cpu/online"))
        }
        if let s = f.cpusetMems {
            l.cpusetMems = try IsolationParser.cpuset(s, flag: "--cpuset-mems", available: (try? FS.readString("/sys/devices/system/node/online")) ?? "0")
        }
        if let s = f.memory { l.memory = try IsolationParser.bytes(s, flag: "--memory") }
        if let s = f.memoryHigh { l.memoryHigh = try IsolationParser.bytes(s, flag: "--memory-high") }
        if let s = f.memoryReservation { l.memoryReservation = try IsolationParser.bytes(s, flag: "--memory-reservation") }
        if let s = f.memorySwap { l.memorySwap = s == "-1" ? -1 : try IsolationParser.bytes(s, flag: "--memory-swap") }
        if let p = f.pidsLimit { l.pidsLimit = p <= 0 ? -1 : Int64(p) }
        if let w = f.blkioWeight, w != 0 {
            guard (10...1000).contains(w) else { throw HakoError(.failed, "invalid --blkio-weight \(w): the range is 10 to 1000") }
            l.blkioWeight = UInt16(w)
        }
        func rates(_ list: [String], _ flag: String, bytes: Bool) throws -> [DeviceRate] {
            try list.map { s in
                let (path, rate) = try IsolationParser.rate(s, flag: flag, bytes: bytes)
                let node = try Engine.deviceNode(path, flag: flag)
                guard node.type == UInt8(ascii: "b") else { throw HakoError(.failed, "invalid \(flag) \"\(s)\": \(path) is not a block device") }
                return DeviceRate(path: path, major: node.major, minor: node.minor, rate: rate)
            }
        }
        l.deviceReadBps = try rates(f.deviceReadBps, "--device-read-bps", bytes: true)
        l.deviceWriteBps = try rates(f.deviceWriteBps, "--device-write-bps", bytes: true)
        l.deviceReadIOps = try rates(f.deviceReadIOps, "--device-read-iops", bytes: false)
        l.deviceWriteIOps = try rates(f.deviceWriteIOps, "--device-write-iops", bytes: false)
        return l
    }

    /// Rules between limits, as Docker states them.
    func validate(_ l: ResourceLimits) throws {
        let minimum: Int64 = 6 << 20
        if let m = l.memory, m < minimum { throw HakoError(.failed, "invalid --memory: the minimum memory limit allowed is 6MB") }
        if let h = l.memoryHigh {
            if h < minimum { throw HakoError(.failed, "invalid --memory-high: the minimum is 6MB") }
            if let m = l.memory, h > m { throw HakoError(.failed, "invalid --memory-high: it must not be above --memory") }
        }
        if let r = l.memoryReservation, let m = l.memory, r > m {
            throw HakoError(.failed, "invalid --memory-reservation: the memory limit should be larger than the memory reservation")
        }
        if let s = l.memorySwap, s != -1 {
            guard let m = l.memory else { throw HakoError(.failed, "invalid --memory-swap: it needs --memory as well (memory plus swap)") }
            if s < m { throw HakoError(.failed, "invalid --memory-swap: the memory+swap limit should be at least the memory limit") }
        }
        if l.memoryHigh != nil && l.memoryReservation != nil && cgroupHost.mode != .unified {
            throw HakoError(.failed, "conflicting options: --memory-high and --memory-reservation both become memory.soft_limit_in_bytes on cgroup v1; give one")
        }
    }

    /// The device node at a host path: its type and numbers (and mode, owner).
    static func deviceNode(_ path: String, flag: String) throws -> DeviceNode {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw HakoError(.failed, "invalid \(flag) \(path)", cause: SystemError("stat", path))
        }
        let fmt = st.st_mode & S_IFMT
        guard fmt == S_IFCHR || fmt == S_IFBLK else { throw HakoError(.failed, "invalid \(flag) \(path): not a device node") }
        let dev = UInt64(st.st_rdev)
        let major = UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff)))
        let minor = UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & ~UInt64(0xff)))
        return DeviceNode(path: path, type: UInt8(ascii: fmt == S_IFBLK ? "b" : "c"), major: major, minor: minor,
                          mode: UInt32(st.st_mode & 0o7777), uid: st.st_uid, gid: st.st_gid)
    }
}
