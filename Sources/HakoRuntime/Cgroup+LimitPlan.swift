import HakoSystem

/// One cgroup file write: `value` into `<controller's dir>/<file>`. When `file`
/// does not exist, `fallbackValue` goes into `fallbackFile` instead (BFQ's weight).
public struct CgroupWrite: Sendable, Equatable, CustomStringConvertible {
    /// The controller whose directory holds the file (v1: its hierarchy).
    public var controller: String
    public var file: String
    public var value: String
    public var fallbackFile: String?
    public var fallbackValue: String?

    public init(_ controller: String, _ file: String, _ value: String, fallback: (file: String, value: String)? = nil) {
        self.controller = controller; self.file = file; self.value = value
        self.fallbackFile = fallback?.file; self.fallbackValue = fallback?.value
    }

    public var description: String { "\(file)=\(value)" }
}

/// Pure: resource limits → the cgroup files and values that enforce them, for
/// each cgroup version. The drivers write them; the tests compare them.
public enum CgroupLimitPlan {
    /// The CFS period hako uses with --cpus (Docker's: 100 ms).
    public static let cpuPeriod: Int64 = 100_000

    /// CFS quota in µs per `cpuPeriod` for --cpus given as nano CPUs.
    public static func cpuQuota(nanoCPUs: Int64) -> Int64 { max(1000, nanoCPUs * cpuPeriod / 1_000_000_000) }

    /// v1 cpu.shares → v2 cpu.weight (the conversion runc and crun use).
    public static func cpuWeight(shares: UInt64) -> UInt64 {
        let s = min(max(shares, 2), 262_144)
        return 1 + ((s - 2) * 9999) / 262_142
    }

    /// --blkio-weight (10…1000) → v2 io.weight (1…10000).
    public static func ioWeight(blkio: UInt16) -> UInt64 { 1 + (UInt64(max(blkio, 10)) - 10) * 9999 / 990 }

    /// memory+swap when --memory-swap was not given: Docker's default is twice
    /// --memory, where the kernel accounts swap.
    static func effectiveSwap(_ l: ResourceLimits, swapAccounting: Bool) -> Int64? {
        if let s = l.memorySwap { return s }
        guard swapAccounting, let m = l.memory else { return nil }
        return m * 2
    }

    public static func v2(_ l: ResourceLimits, swapAccounting: Bool = true) -> [CgroupWrite] {
        var w: [CgroupWrite] = []
        if let n = l.nanoCPUs { w.append(.init("cpu", "cpu.max", "\(cpuQuota(nanoCPUs: n)) \(cpuPeriod)")) }
        if let s = l.cpuShares { w.append(.init("cpu", "cpu.weight", "\(cpuWeight(shares: s))")) }
        if let c = l.cpusetCpus { w.append(.init("cpuset", "cpuset.cpus", c)) }
        if let m = l.cpusetMems { w.append(.init("cpuset", "cpuset.mems", m)) }
        if let r = l.memoryReservation { w.append(.init("memory", "memory.low", "\(r)")) }
        if let h = l.memoryHigh { w.append(.init("memory", "memory.high", h < 0 ? "max" : "\(h)")) }
        if let m = l.memory { w.append(.init("memory", "memory.max", m < 0 ? "max" : "\(m)")) }
        if let s = effectiveSwap(l, swapAccounting: swapAccounting) {
            let swap = s < 0 || (l.memory ?? -1) < 0 ? "max" : "\(max(0, s - (l.memory ?? 0)))"
            w.append(.init("memory", "memory.swap.max", swap))
        }
        if let p = l.pidsLimit { w.append(.init("pids", "pids.max", p <= 0 ? "max" : "\(p)")) }
        if let b = l.blkioWeight {
            w.append(.init("io", "io.weight", "default \(ioWeight(blkio: b))", fallback: ("io.bfq.weight", "\(b)")))
        }
        for line in ioMaxLines(l) { w.append(.init("io", "io.max", line)) }
        return w
    }

    /// io.max lines: one per device, every rate of that device on it.
    static func ioMaxLines(_ l: ResourceLimits) -> [String] {
        var order: [String] = []
        var fields: [String: [String]] = [:]
        for (key, rates) in [("rbps", l.deviceReadBps), ("wbps", l.deviceWriteBps), ("riops", l.deviceReadIOps), ("wiops", l.deviceWriteIOps)] {
            for r in rates {
                let dev = "\(r.major):\(r.minor)"
                if fields[dev] == nil { order.append(dev) }
                fields[dev, default: []].append("\(key)=\(r.rate)")
            }
        }
        return order.map { "\($0) " + (fields[$0] ?? []).joined(separator: " ") }
    }

    public static func v1(_ l: ResourceLimits, swapAccounting: Bool = true) -> [CgroupWrite] {
        var w: [CgroupWrite] = []
        if let n = l.nanoCPUs {
            w.append(.init("cpu", "cpu.cfs_period_us", "\(cpuPeriod)"))
            w.append(.init("cpu", "cpu.cfs_quota_us", "\(cpuQuota(nanoCPUs: n))"))
        }
        if let s = l.cpuShares { w.append(.init("cpu", "cpu.shares", "\(s)")) }
        if let c = l.cpusetCpus { w.append(.init("cpuset", "cpuset.cpus", c)) }
        if let m = l.cpusetMems { w.append(.init("cpuset", "cpuset.mems", m)) }
        // v1 has no memory.high: its closest is the soft limit, which reclaim
        // pushes the cgroup back to under pressure (docs/isolation.md).
        if let r = l.memoryReservation ?? l.memoryHigh { w.append(.init("memory", "memory.soft_limit_in_bytes", "\(r)")) }
        if let m = l.memory { w.append(.init("memory", "memory.limit_in_bytes", "\(m < 0 ? -1 : m)")) }
        if let s = effectiveSwap(l, swapAccounting: swapAccounting) {
            w.append(.init("memory", "memory.memsw.limit_in_bytes", "\(s < 0 ? -1 : s)"))
        }
        if let p = l.pidsLimit { w.append(.init("pids", "pids.max", p <= 0 ? "max" : "\(p)")) }
        if let b = l.blkioWeight { w.append(.init("blkio", "blkio.weight", "\(b)", fallback: ("blkio.bfq.weight", "\(b)"))) }
        for (file, rates) in [("blkio.throttle.read_bps_device", l.deviceReadBps), ("blkio.throttle.write_bps_device", l.deviceWriteBps),
                              ("blkio.throttle.read_iops_device", l.deviceReadIOps), ("blkio.throttle.write_iops_device", l.deviceWriteIOps)] {
            for r in rates { w.append(.init("blkio", file, "\(r.major):\(r.minor) \(r.rate)")) }
        }
        return w
    }

    /// What each given limit needs from the kernel, flag by flag.
    public struct Requirement: Sendable, Equatable {
        public var flag: String
        /// v2 controller name; the v1 hierarchy is `v1Controller`.
        public var controller: String
        public var v1Controller: String
        /// A file the v1 hierarchy must have (a kernel option, not only the controller).
        public var v1File: String?
        public var alternativeV1File: String?
        /// A file a v2 cgroup must have once the controller is enabled.
        public var v2File: String?
        public var alternativeV2File: String?
    }

    public static func requirements(_ l: ResourceLimits) -> [Requirement] {
        var out: [Requirement] = []
        func need(_ flag: String, _ ctrl: String, v1: String? = nil, v1File: String? = nil, v1Alt: String? = nil,
                  v2File: String? = nil, v2Alt: String? = nil) {
            out.append(Requirement(flag: flag, controller: ctrl, v1Controller: v1 ?? ctrl, v1File: v1File,
                                   alternativeV1File: v1Alt, v2File: v2File, alternativeV2File: v2Alt))
        }
        if l.nanoCPUs != nil { need("--cpus", "cpu", v1File: "cpu.cfs_quota_us", v2File: "cpu.max") }
        if l.cpuShares != nil { need("--cpu-shares", "cpu", v1File: "cpu.shares", v2File: "cpu.weight") }
        if l.cpusetCpus != nil { need("--cpuset-cpus", "cpuset") }
        if l.cpusetMems != nil { need("--cpuset-mems", "cpuset") }
        if l.memory != nil { need("--memory", "memory") }
        if l.memoryHigh != nil { need("--memory-high", "memory") }
        if l.memoryReservation != nil { need("--memory-reservation", "memory") }
        if l.memorySwap != nil { need("--memory-swap", "memory", v1File: "memory.memsw.limit_in_bytes", v2File: "memory.swap.max") }
        if l.pidsLimit != nil { need("--pids-limit", "pids") }
        if l.blkioWeight != nil {
            need("--blkio-weight", "io", v1: "blkio", v1File: "blkio.weight", v1Alt: "blkio.bfq.weight", v2File: "io.weight", v2Alt: "io.bfq.weight")
        }
        for (flag, rates) in [("--device-read-bps", l.deviceReadBps), ("--device-write-bps", l.deviceWriteBps),
                              ("--device-read-iops", l.deviceReadIOps), ("--device-write-iops", l.deviceWriteIOps)] where !rates.isEmpty {
            need(flag, "io", v1: "blkio", v1File: "blkio.throttle.read_bps_device", v2File: "io.max")
        }
        return out
    }

    /// One error line naming the flag, the missing controller or kernel feature, and the fix.
    public static func unavailable(_ r: Requirement, version: Int, missingFile: String? = nil, reason: String) -> HakoError {
        let what = missingFile.map { "the kernel's \(r.controller) controller has no \($0)" }
            ?? "the \(version == 1 ? r.v1Controller : r.controller) cgroup controller is not available"
        return HakoError(.unsupported(missing: missingFile.map { "\($0) (cgroup v\(version))" } ?? what), "cannot enforce \(r.flag): \(what) (cgroup v\(version): \(reason)); fix: \(fix(r, file: missingFile, version: version))")
    }

    static func fix(_ r: Requirement, file: String?, version: Int) -> String {
        switch (r.controller, file) {
        case ("memory", "memory.memsw.limit_in_bytes"?), ("memory", "memory.swap.max"?):
            return "swap accounting: add \"swapaccount=1\" to the kernel command line (a kernel with CONFIG_MEMCG_SWAP), or leave out --memory-swap"
        case ("memory", _):
            return "Raspberry Pi OS: append \"cgroup_enable=memory cgroup_memory=1\" to the single line in /boot/firmware/cmdline.txt (older releases: /boot/cmdline.txt) and reboot; other kernels need CONFIG_MEMCG"
        case ("cpu", "cpu.cfs_quota_us"?), ("cpu", "cpu.max"?):
            return "a kernel with CONFIG_CFS_BANDWIDTH"
        case ("io", "blkio.weight"?), ("io", "io.weight"?):
            return "proportional I/O weights need the BFQ scheduler on the device (echo bfq > /sys/block/DEVICE/queue/scheduler) or CONFIG_BFQ_GROUP_IOSCHED; or leave out --blkio-weight"
        case ("io", _):
            return "a kernel with CONFIG_BLK_CGROUP and CONFIG_BLK_DEV_THROTTLING"
        default:
            if version == 2 {
                return "enable it for hako's cgroups: echo +\(r.controller) > /sys/fs/cgroup/cgroup.subtree_control (under systemd: Delegate=yes in hako's unit), or a kernel with the \(r.controller) controller"
            }
            return "mount the \(r.v1Controller) hierarchy (a kernel with CONFIG_CGROUP_\(r.controller.uppercased()))"
        }
    }
}
