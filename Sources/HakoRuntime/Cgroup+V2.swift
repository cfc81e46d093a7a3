#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// cgroup v2: one directory per container under `<mount>/<parent>/<id>`.
public struct CgroupV2Driver: CgroupDriver {
    public let host: CgroupHost
    public let parent: String
    /// The kernel side of the device filter (bpf(2)); replaced in tests.
    public var deviceLoader: any DeviceFilterLoader = KernelDeviceFilterLoader()
    let mount: String

    public init(host: CgroupHost, parent: String) {
        self.host = host
        self.parent = parent
        self.mount = host.unified ?? "/sys/fs/cgroup"
    }

    func dir(_ id: String) -> String { "\(mount)/\(parent)/\(id)" }

    public func placement(for id: String) -> CgroupPlacement {
        var p = CgroupPlacement()
        let d = dir(id)
        p.unifiedDir = d
        p.removeDirs = [d]
        p.killFile = "\(d)/cgroup.kill"
        p.freezer = "\(d)/cgroup.freeze"
        p.freezerIsV2 = true
        p.oomEvents = "\(d)/memory.events"
        return p
    }

    public func create(_ id: String) throws -> CgroupPlacement {
        try enableControllers()
        try CgroupFS.makeDir(dir(id))
        return placement(for: id)
    }

    public func remove(_ id: String) throws {
        let d = dir(id)
        guard FS.isDirectory(d) else { return }
        if (try? CgroupFS.write("\(d)/cgroup.kill", "1")) == nil {
            CgroupFS.killAll(procs: "\(d)/cgroup.procs") { try? CgroupFS.write("\(d)/cgroup.freeze", "0") }
        }
        try CgroupFS.removeDir(d)
    }

    public func setFrozen(_ id: String, _ frozen: Bool) throws {
        let d = dir(id)
        try CgroupFS.write("\(d)/cgroup.freeze", frozen ? "1" : "0")
        // Wait until the kernel reports the new state (cgroup.events "frozen").
        for _ in 0..<400 {
            if isFrozen(id) == frozen { return }
            usleep(2500)
        }
    }

    public func isFrozen(_ id: String) -> Bool {
        guard let events = CgroupFS.read("\(dir(id))/cgroup.events") else { return false }
        return events.split(separator: "\n").contains("frozen 1")
    }

    public func processes(_ id: String) -> [Int32] { CgroupFS.pids("\(dir(id))/cgroup.procs") }
}
