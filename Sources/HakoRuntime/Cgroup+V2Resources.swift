#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// cgroup v2 limits, device filter and statistics.
extension CgroupV2Driver {
    /// The controllers hako enables for its containers, where the kernel has them.
    static let managedControllers = ["cpuset", "cpu", "io", "memory", "pids"]

    static func words(_ text: String?) -> Set<String> {
        Set((text ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map { String($0.drop { $0 == "+" }) })
    }

    /// Enables the managed controllers the kernel offers in every cgroup from the
    /// mount down to the parent (cgroup.subtree_control), so the container's cgroup
    /// gets them. Idempotent; a write is made only where one is missing.
    func enableControllers() throws {
        let offered = Self.words(CgroupFS.read("\(mount)/cgroup.controllers"))
        let wanted = Self.managedControllers.filter(offered.contains)
        guard !wanted.isEmpty else { return }
        var dir = mount
        for component in [""] + parent.split(separator: "/").map(String.init) {
            if !component.isEmpty {
                dir += "/" + component
                try CgroupFS.makeDir(dir)
            }
            let available = Self.words(CgroupFS.read("\(dir)/cgroup.controllers"))
            let enabled = Self.words(CgroupFS.read("\(dir)/cgroup.subtree_control"))
            let missing = wanted.filter { available.contains($0) && !enabled.contains($0) }
            if missing.isEmpty { continue }
            do {
                try CgroupFS.write("\(dir)/cgroup.subtree_control", missing.map { "+" + $0 }.joined(separator: " "))
            } catch {
                // A cgroup with processes of its own cannot delegate (cgroup v2's
                // "no internal processes" rule): `check` names what is then missing.
                return
            }
        }
    }

    /// What the container's cgroup will get: the parent's subtree_control.
    func delegatedControllers() -> Set<String> {
        Self.words(CgroupFS.read("\(mount)/\(parent)/cgroup.subtree_control"))
    }

    public func check(_ limits: ResourceLimits) throws {
        let requirements = CgroupLimitPlan.requirements(limits)
        guard !requirements.isEmpty else { return }
        try enableControllers()
        let delegated = delegatedControllers()
        let offered = Self.words(CgroupFS.read("\(mount)/cgroup.controllers"))
        let parentDir = "\(mount)/\(parent)"
        for r in requirements {
            guard delegated.contains(r.controller) else {
                let reason = offered.contains(r.controller)
                    ? "not enabled in \(parentDir)/cgroup.subtree_control"
                    : "not in \(mount)/cgroup.controllers"
                throw CgroupLimitPlan.unavailable(r, version: 2, reason: reason)
            }
            if let f = r.v2File, !FS.exists("\(parentDir)/\(f)"), r.alternativeV2File.map({ !FS.exists("\(parentDir)/\($0)") }) ?? true {
                throw CgroupLimitPlan.unavailable(r, version: 2, missingFile: f, reason: "\(parentDir)/\(f) does not exist")
            }
        }
    }

    public func apply(_ limits: ResourceLimits, to id: String) throws {
        try check(limits)
        let d = dir(id)
        let swapAccounting = FS.exists("\(d)/memory.swap.max")
        for w in CgroupLimitPlan.v2(limits, swapAccounting: swapAccounting) {
            try CgroupFS.apply(w, in: d)
        }
    }

    public func setDeviceList(_ rules: [DeviceRule], for id: String) throws {}

    public func attachDeviceFilter(_ rules: [DeviceRule], for id: String) throws {
        try deviceLoader.attach(DeviceFilterProgram.generate(rules), toCgroup: dir(id))
    }

    public func stats(_ id: String) -> CgroupStats {
        let d = dir(id)
        var s = CgroupStats()
        s.cpuNanos = CgroupStatFiles.value(CgroupFS.read("\(d)/cpu.stat"), "usage_usec").map { $0 &* 1000 }
        s.memoryUsage = CgroupStatFiles.workingSet(usage: CgroupStatFiles.number(CgroupFS.read("\(d)/memory.current")),
                                                   inactiveFile: CgroupStatFiles.value(CgroupFS.read("\(d)/memory.stat"), "inactive_file"))
        s.memoryLimit = CgroupStatFiles.number(CgroupFS.read("\(d)/memory.max"))
        s.pids = CgroupStatFiles.number(CgroupFS.read("\(d)/pids.current"))
        s.pidsLimit = CgroupStatFiles.number(CgroupFS.read("\(d)/pids.max"))
        if let io = CgroupStatFiles.ioStat(CgroupFS.read("\(d)/io.stat")) { s.blockRead = io.read; s.blockWrite = io.write }
        return s
    }
}

extension CgroupFS {
    /// One planned write, through its fallback file when the first does not exist.
    static func apply(_ w: CgroupWrite, in dir: String) throws {
        var path = "\(dir)/\(w.file)"
        var value = w.value
        if !FS.exists(path), let f = w.fallbackFile, let v = w.fallbackValue, FS.exists("\(dir)/\(f)") {
            path = "\(dir)/\(f)"
            value = v
        }
        do {
            try write(path, value)
        } catch let e as SystemError {
            throw HakoError(.kernel(operation: "write", errno: e.errno), "cannot set \(path.split(separator: "/").last ?? "") to \(value)", cause: SystemError("write", path, errno: e.errno))
        }
    }
}
