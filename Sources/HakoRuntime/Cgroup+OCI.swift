#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// One cgroup write a config.json field asks for; the field is named when the
/// host cannot take it.
public struct OCICgroupWrite: Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var write: CgroupWrite
    public init(_ field: String, _ write: CgroupWrite) { self.field = field; self.write = write }
    public var description: String { "\(field): \(write)" }
}

/// Where an OCI container's cgroups are: `cgroupsPath` resolved the way runc
/// resolves it, as the drivers' parent and leaf.
public enum OCICgroupPath {
    /// `path`: linux.cgroupsPath, nil or empty for the default. Absolute paths
    /// are taken from each hierarchy's root; relative ones (and the default
    /// "<id>") are taken from the root too. With `systemd`, "slice:prefix:name"
    /// becomes /a.slice/a-b.slice/prefix-name.scope (placed through cgroupfs).
    public static func resolve(_ path: String?, id: String, systemd: Bool) throws -> (parent: String, leaf: String) {
        var full: String
        if systemd {
            let spec = path ?? ""
            let parts = spec.isEmpty ? ["", "hako-runtime", id] : spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3 else {
                throw HakoError(.invalidArgument("linux.cgroupsPath"), "config.json: linux.cgroupsPath: \"\(spec)\" is not slice:prefix:name (--systemd-cgroup)")
            }
            let slice = try expandSlice(parts[0].isEmpty ? "system.slice" : parts[0])
            let name = parts[2].hasSuffix(".slice") ? parts[2] : (parts[1].isEmpty ? parts[2] : "\(parts[1])-\(parts[2])") + ".scope"
            full = slice + "/" + name
        } else {
            full = (path ?? "").isEmpty ? id : (path ?? "")
        }
        let comps = full.split(separator: "/").map(String.init)
        guard let leaf = comps.last, !comps.contains(".."), !comps.contains(".") else {
            throw HakoError(.invalidArgument("linux.cgroupsPath"), "config.json: linux.cgroupsPath: \"\(path ?? "")\" is not a valid cgroup path")
        }
        return (comps.dropLast().joined(separator: "/"), leaf)
    }

    /// "a-b-c.slice" → "a.slice/a-b.slice/a-b-c.slice" (systemd's slice nesting).
    public static func expandSlice(_ slice: String) throws -> String {
        guard slice.hasSuffix(".slice"), !slice.contains("/") else {
            throw HakoError(.invalidArgument("linux.cgroupsPath"), "config.json: linux.cgroupsPath: invalid slice \"\(slice)\"")
        }
        let base = String(slice.dropLast(6))
        if base == "-" || base.isEmpty { return "" }
        guard !base.hasPrefix("-"), !base.hasSuffix("-"), !base.contains("--") else {
            throw HakoError(.invalidArgument("linux.cgroupsPath"), "config.json: linux.cgroupsPath: invalid slice \"\(slice)\"")
        }
        var out: [String] = []
        var prefix = ""
        for part in base.split(separator: "-") {
            prefix = prefix.isEmpty ? String(part) : prefix + "-" + part
            out.append(prefix + ".slice")
        }
        return out.joined(separator: "/")
    }
}

extension OCI.Resources {
    /// Pure: the cgroup files these resources set, for cgroup v2 (`version` 2) or
    /// v1. Fields the version cannot honour are refused, naming the field.
    public func cgroupWrites(version: Int) throws -> [OCICgroupWrite] {
        var w: [OCICgroupWrite] = []
        func add(_ field: String, _ ctrl: String, _ file: String, _ value: String, fallback: (String, String)? = nil) {
            w.append(OCICgroupWrite("linux.resources.\(field)", CgroupWrite(ctrl, file, value, fallback: fallback)))
        }
        func refuse(_ field: String, _ why: String) -> HakoError {
            HakoError(.invalidArgument("linux.resources.\(field)"), "config.json: linux.resources.\(field): \(why)")
        }
        let v2 = version == 2
        if let m = memory {
            if m.checkBeforeUpdate == true { throw refuse("memory.checkBeforeUpdate", "is not supported by hako-runtime") }
            if v2 {
                if m.useHierarchy == false { throw refuse("memory.useHierarchy", "cgroup v2 is always hierarchical") }
                if let r = m.reservation { add("memory.reservation", "memory", "memory.low", r < 0 ? "max" : "\(r)") }
                if let l = m.limit { add("memory.limit", "memory", "memory.max", l < 0 ? "max" : "\(l)") }
                if let s = m.swap {
                    let value = s < 0 || (m.limit ?? -1) < 0 ? "max" : "\(max(0, s - (m.limit ?? 0)))"
                    add("memory.swap", "memory", "memory.swap.max", value)
                }
                if m.swappiness != nil { throw refuse("memory.swappiness", "cgroup v2 has no per-cgroup swappiness") }
                if m.kernel != nil { throw refuse("memory.kernel", "cgroup v2 has no kernel memory limit") }
                if m.kernelTCP != nil { throw refuse("memory.kernelTCP", "cgroup v2 has no kernel TCP memory limit") }
                if m.disableOOMKiller == true { throw refuse("memory.disableOOMKiller", "cgroup v2 cannot disable the OOM killer") }
            } else {
                if let r = m.reservation { add("memory.reservation", "memory", "memory.soft_limit_in_bytes", "\(r)") }
                // memsw may never be below the limit: the driver orders these two writes.
                if let l = m.limit { add("memory.limit", "memory", "memory.limit_in_bytes", "\(l)") }
                if let s = m.swap { add("memory.swap", "memory", "memory.memsw.limit_in_bytes", "\(s)") }
                if let k = m.kernel { add("memory.kernel", "memory", "memory.kmem.limit_in_bytes", "\(k)") }
                if let k = m.kernelTCP { add("memory.kernelTCP", "memory", "memory.kmem.tcp.limit_in_bytes", "\(k)") }
                if let s = m.swappiness {
                    guard s <= 100 else { throw refuse("memory.swappiness", "must be 0 to 100") }
                    add("memory.swappiness", "memory", "memory.swappiness", "\(s)")
                }
                if let d = m.disableOOMKiller { add("memory.disableOOMKiller", "memory", "memory.oom_control", d ? "1" : "0") }
                if let u = m.useHierarchy { add("memory.useHierarchy", "memory", "memory.use_hierarchy", u ? "1" : "0") }
            }
        }
        if let c = cpu {
            if v2 {
                if let s = c.shares { add("cpu.shares", "cpu", "cpu.weight", "\(CgroupLimitPlan.cpuWeight(shares: s))") }
                if c.quota != nil || c.period != nil {
                    let q = c.quota.map { $0 < 0 ? "max" : "\($0)" } ?? "max"
                    add(c.quota != nil ? "cpu.quota" : "cpu.period", "cpu", "cpu.max", c.period.map { "\(q) \($0)" } ?? q)
                }
                if let b = c.burst { add("cpu.burst", "cpu", "cpu.max.burst", "\(b)") }
                if let i = c.idle { add("cpu.idle", "cpu", "cpu.idle", "\(i)") }
                if c.realtimeRuntime != nil || c.realtimePeriod != nil {
                    throw refuse("cpu.realtimeRuntime", "cgroup v2 has no real-time CPU limits")
                }
            } else {
                if let s = c.shares { add("cpu.shares", "cpu", "cpu.shares", "\(s)") }
                if let p = c.period { add("cpu.period", "cpu", "cpu.cfs_period_us", "\(p)") }
                if let q = c.quota { add("cpu.quota", "cpu", "cpu.cfs_quota_us", "\(q)") }
                if let b = c.burst { add("cpu.burst", "cpu", "cpu.cfs_burst_us", "\(b)") }
                if let p = c.realtimePeriod { add("cpu.realtimePeriod", "cpu", "cpu.rt_period_us", "\(p)") }
                if let r = c.realtimeRuntime { add("cpu.realtimeRuntime", "cpu", "cpu.rt_runtime_us", "\(r)") }
                if let i = c.idle { add("cpu.idle", "cpu", "cpu.idle", "\(i)") }
            }
            if let s = c.cpus, !s.isEmpty { add("cpu.cpus", "cpuset", "cpuset.cpus", s) }
            if let s = c.mems, !s.isEmpty { add("cpu.mems", "cpuset", "cpuset.mems", s) }
        }
        if let p = pidsLimit { add("pids.limit", "pids", "pids.max", p <= 0 ? "max" : "\(p)") }
        if let b = blockIO {
            if v2 {
                if let x = b.weight { add("blockIO.weight", "io", "io.weight", "default \(CgroupLimitPlan.ioWeight(blkio: x))", fallback: ("io.bfq.weight", "\(x)")) }
                if b.leafWeight != nil { throw refuse("blockIO.leafWeight", "cgroup v2 has no leaf weight") }
                for d in b.weightDevice {
                    if let x = d.weight { add("blockIO.weightDevice", "io", "io.weight", "\(d.major):\(d.minor) \(CgroupLimitPlan.ioWeight(blkio: x))") }
                    if d.leafWeight != nil { throw refuse("blockIO.weightDevice.leafWeight", "cgroup v2 has no leaf weight") }
                }
                for (key, list, name) in [("rbps", b.throttleReadBpsDevice, "throttleReadBpsDevice"), ("wbps", b.throttleWriteBpsDevice, "throttleWriteBpsDevice"),
                                          ("riops", b.throttleReadIOPSDevice, "throttleReadIOPSDevice"), ("wiops", b.throttleWriteIOPSDevice, "throttleWriteIOPSDevice")] {
                    for d in list { add("blockIO.\(name)", "io", "io.max", "\(d.major):\(d.minor) \(key)=\(d.rate)") }
                }
            } else {
                if let x = b.weight { add("blockIO.weight", "blkio", "blkio.weight", "\(x)", fallback: ("blkio.bfq.weight", "\(x)")) }
                if let x = b.leafWeight { add("blockIO.leafWeight", "blkio", "blkio.leaf_weight", "\(x)") }
                for d in b.weightDevice {
                    if let x = d.weight { add("blockIO.weightDevice", "blkio", "blkio.weight_device", "\(d.major):\(d.minor) \(x)", fallback: ("blkio.bfq.weight_device", "\(d.major):\(d.minor) \(x)")) }
                    if let x = d.leafWeight { add("blockIO.weightDevice", "blkio", "blkio.leaf_weight_device", "\(d.major):\(d.minor) \(x)") }
                }
                for (file, list, name) in [("read_bps_device", b.throttleReadBpsDevice, "throttleReadBpsDevice"), ("write_bps_device", b.throttleWriteBpsDevice, "throttleWriteBpsDevice"),
                                           ("read_iops_device", b.throttleReadIOPSDevice, "throttleReadIOPSDevice"), ("write_iops_device", b.throttleWriteIOPSDevice, "throttleWriteIOPSDevice")] {
                    for d in list { add("blockIO.\(name)", "blkio", "blkio.throttle.\(file)", "\(d.major):\(d.minor) \(d.rate)") }
                }
            }
        }
        for h in hugepageLimits {
            add("hugepageLimits", "hugetlb", v2 ? "hugetlb.\(h.pageSize).max" : "hugetlb.\(h.pageSize).limit_in_bytes", "\(h.limit)")
        }
        if let c = networkClassID {
            if v2 { throw refuse("network.classID", "cgroup v2 has no net_cls controller") }
            add("network.classID", "net_cls", "net_cls.classid", "\(c)")
        }
        for p in networkPriorities {
            if v2 { throw refuse("network.priorities", "cgroup v2 has no net_prio controller") }
            add("network.priorities", "net_prio", "net_prio.ifpriomap", "\(p.name) \(p.priority)")
        }
        for (file, value) in unified {
            guard !file.contains("/"), !file.hasPrefix(".") else { throw refuse("unified.\(file)", "is not a cgroup file name") }
            add("unified.\(file)", "unified", file, value)
        }
        return w
    }

    /// linux.resources.devices → device cgroup rules, in order.
    public func deviceRules() throws -> [DeviceRule] {
        try devices.enumerated().map { i, d in
            let kind: DeviceRule.Kind
            switch d.type ?? "a" {
            case "c": kind = .char
            case "b": kind = .block
            default: kind = .all
            }
            func number(_ v: Int64?, _ what: String) throws -> UInt32? {
                guard let v, v >= 0 else { return nil }  // -1 (and absent) mean any
                guard v < 1 << 20 else { throw HakoError(.invalidArgument("linux.resources.devices"), "config.json: linux.resources.devices[\(i)].\(what): out of range") }
                return UInt32(v)
            }
            let access = d.access.flatMap { DeviceAccess(parsing: String($0.reduce(into: "") { s, c in if !s.contains(c) { s.append(c) } })) } ?? .all
            return DeviceRule(kind, try number(d.major, "major"), try number(d.minor, "minor"), access, allow: d.allow)
        }
    }
}

extension CgroupDriver {
    /// The directory that holds `controller`'s files for container `id`
    /// ("unified": the cgroup2 directory, on hybrid hosts too); nil when absent.
    public func directory(of controller: String, for id: String) -> String? {
        if let v2 = self as? CgroupV2Driver { return v2.dir(id) }
        guard let v1 = self as? CgroupV1Driver else { return nil }
        if controller == "unified" { return v1.host.unified.map { "\($0)/\(v1.parent)/\(id)" } }
        return v1.host.v1Mount(controller).map { v1.dir($0, id) }
    }

    public var version: Int { self is CgroupV2Driver ? 2 : 1 }

    /// Writes the planned files, each through its controller's directory. On v1
    /// memory.memsw goes first when the new limit is above the current memsw.
    public func apply(_ writes: [OCICgroupWrite], to id: String) throws {
        var list = writes
        if let mi = list.firstIndex(where: { $0.write.file == "memory.limit_in_bytes" }),
           let si = list.firstIndex(where: { $0.write.file == "memory.memsw.limit_in_bytes" }), si > mi,
           let dir = directory(of: "memory", for: id) {
            let current = Int64(CgroupFS.read("\(dir)/memory.memsw.limit_in_bytes") ?? "") ?? Int64.max
            let wanted = Int64(list[mi].write.value) ?? -1
            if wanted < 0 || wanted > current { list.swapAt(mi, si) }
        }
        for w in list {
            guard let dir = directory(of: w.write.controller, for: id) else {
                throw HakoError(.unsupported(missing: "the \(w.write.controller) cgroup controller"), "config.json: \(w.field): the \(w.write.controller) cgroup controller is not available on this host")
            }
            let path = "\(dir)/\(w.write.file)"
            if !FS.exists(path) && w.write.fallbackFile.map({ !FS.exists("\(dir)/\($0)") }) ?? true {
                throw HakoError(.unsupported(missing: "\(w.write.file) (cgroup v\(version))"), "config.json: \(w.field): this kernel has no \(w.write.file) (cgroup v\(version))")
            }
            do { try CgroupFS.apply(w.write, in: dir) } catch let e as HakoError {
                throw HakoError(e.kind, "config.json: \(w.field): \(e.message)", cause: e.cause)
            }
        }
    }
}
