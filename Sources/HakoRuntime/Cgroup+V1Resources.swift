#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// cgroup v1 limits, device rules and statistics: a controller per hierarchy.
/// On a hybrid host the device filter is also attached to the container's
/// cgroup2 directory (its init lives in both), so both apply.
extension CgroupV1Driver {
    /// `/proc/cgroups`: controllers the kernel has but were disabled at boot (cgroup_disable=…).
    static func disabledControllers(_ text: String?) -> Set<String> {
        var out = Set<String>()
        for line in (text ?? "").split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if f.count >= 4, f[3] == "0" { out.insert(String(f[0])) }
        }
        return out
    }

    public func check(_ limits: ResourceLimits) throws {
        let requirements = CgroupLimitPlan.requirements(limits)
        guard !requirements.isEmpty else { return }
        let disabled = Self.disabledControllers(CgroupFS.read("/proc/cgroups"))
        for r in requirements {
            guard let mount = host.v1Mount(r.v1Controller) else {
                let reason = disabled.contains(r.v1Controller) ? "disabled on the kernel command line" : "no \(r.v1Controller) hierarchy is mounted"
                throw CgroupLimitPlan.unavailable(r, version: 1, reason: reason)
            }
            if let f = r.v1File, !FS.exists("\(mount)/\(f)"), r.alternativeV1File.map({ !FS.exists("\(mount)/\($0)") }) ?? true {
                throw CgroupLimitPlan.unavailable(r, version: 1, missingFile: f, reason: "\(mount)/\(f) does not exist")
            }
        }
    }

    public func apply(_ limits: ResourceLimits, to id: String) throws {
        try check(limits)
        let swapAccounting = host.v1Mount("memory").map { FS.exists("\($0)/memory.memsw.limit_in_bytes") } ?? false
        var writes = CgroupLimitPlan.v1(limits, swapAccounting: swapAccounting)
        // memory.memsw.limit_in_bytes may never be below memory.limit_in_bytes:
        // when the memory limit rises above the current memsw, raise memsw first.
        if let mi = writes.firstIndex(where: { $0.file == "memory.limit_in_bytes" }),
           let si = writes.firstIndex(where: { $0.file == "memory.memsw.limit_in_bytes" }), si > mi,
           let memoryMount = host.v1Mount("memory") {
            let current = Int64(CgroupFS.read("\(dir(memoryMount, id))/memory.memsw.limit_in_bytes") ?? "") ?? Int64.max
            let wanted = Int64(writes[mi].value) ?? -1
            if wanted < 0 || wanted > current { writes.swapAt(mi, si) }
        }
        for w in writes {
            guard let mount = host.v1Mount(w.controller) else { continue }  // check() refused it already
            try CgroupFS.apply(w, in: dir(mount, id))
        }
    }

    public func setDeviceList(_ rules: [DeviceRule], for id: String) throws {
        if let mount = host.v1Mount("devices") {
            let d = dir(mount, id)
            // Default deny, then the rules in order; "a" rules reset the default.
            try CgroupFS.write("\(d)/devices.deny", "a")
            for r in rules {
                if r == .allowAll { try CgroupFS.write("\(d)/devices.allow", "a"); continue }
                if r == .denyAll { try CgroupFS.write("\(d)/devices.deny", "a"); continue }
                try CgroupFS.write("\(d)/\(r.allow ? "devices.allow" : "devices.deny")", r.description)
            }
        }
    }

    public func attachDeviceFilter(_ rules: [DeviceRule], for id: String) throws {
        if let u = host.unified {
            try deviceLoader.attach(DeviceFilterProgram.generate(rules), toCgroup: "\(u)/\(parent)/\(id)")
        }
    }

    public func stats(_ id: String) -> CgroupStats {
        func file(_ controller: String, _ name: String) -> String? {
            host.v1Mount(controller).flatMap { CgroupFS.read("\(dir($0, id))/\(name)") }
        }
        var s = CgroupStats()
        s.cpuNanos = CgroupStatFiles.number(file("cpuacct", "cpuacct.usage"))
        s.memoryUsage = CgroupStatFiles.workingSet(usage: CgroupStatFiles.number(file("memory", "memory.usage_in_bytes")),
                                                   inactiveFile: CgroupStatFiles.value(file("memory", "memory.stat"), "total_inactive_file"))
        s.memoryLimit = CgroupStatFiles.number(file("memory", "memory.limit_in_bytes"))
        s.pids = CgroupStatFiles.number(file("pids", "pids.current"))
        s.pidsLimit = CgroupStatFiles.number(file("pids", "pids.max"))
        // The throttle counters see every I/O; the others only where the scheduler accounts.
        let throttled = CgroupStatFiles.blkioServiced(file("blkio", "blkio.throttle.io_service_bytes_recursive"))
        if let io = throttled ?? CgroupStatFiles.blkioServiced(file("blkio", "blkio.io_service_bytes_recursive")) {
            s.blockRead = io.read
            s.blockWrite = io.write
        }
        return s
    }
}
