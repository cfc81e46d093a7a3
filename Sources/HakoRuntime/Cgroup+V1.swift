#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// cgroup v1: one directory per container in every mounted v1 hierarchy. On a
/// hybrid host the cgroup2 mount is used too: the init is cloned into it
/// (CLONE_INTO_CGROUP) and leftovers are killed through its cgroup.kill.
public struct CgroupV1Driver: CgroupDriver {
    public let host: CgroupHost
    public let parent: String
    /// The kernel side of the device filter (bpf(2)); replaced in tests.
    public var deviceLoader: any DeviceFilterLoader = KernelDeviceFilterLoader()

    public init(host: CgroupHost, parent: String) {
        self.host = host
        self.parent = parent
    }

    /// Hierarchies with a controller; named ones (name=systemd) carry none and are left alone.
    var mounts: [String] { host.v1.filter { $0.controllers.contains { !$0.hasPrefix("name=") } }.map(\.mount) }

    func dir(_ mount: String, _ id: String) -> String { "\(mount)/\(parent)/\(id)" }

    public func placement(for id: String) -> CgroupPlacement {
        var p = CgroupPlacement()
        if let u = host.unified {
            p.unifiedDir = "\(u)/\(parent)/\(id)"
            p.killFile = "\(u)/\(parent)/\(id)/cgroup.kill"
        }
        p.procsFiles = mounts.map { "\(dir($0, id))/cgroup.procs" }
        if p.killFile == nil, let first = mounts.first { p.killFile = "\(dir(first, id))/cgroup.procs" }
        if let f = host.v1Mount("freezer") {
            p.freezer = "\(dir(f, id))/freezer.state"
        } else if let u = host.unified {
            p.freezer = "\(u)/\(parent)/\(id)/cgroup.freeze"
            p.freezerIsV2 = true
        }
        if let m = host.v1Mount("memory") { p.oomEvents = "\(dir(m, id))/memory.oom_control" }
        var dirs = mounts.map { dir($0, id) }
        if let u = host.unified { dirs.append("\(u)/\(parent)/\(id)") }
        p.removeDirs = dirs
        return p
    }

    public func create(_ id: String) throws -> CgroupPlacement {
        for mount in mounts {
            let isCpuset = host.v1.first { $0.mount == mount }?.controllers.contains("cpuset") ?? false
            try CgroupFS.makeDir(dir(mount, id)) { path in
                // A new cpuset cgroup starts empty and refuses tasks: inherit the parent's.
                if isCpuset { try Self.inheritCpuset(path) }
            }
        }
        if let u = host.unified { try CgroupFS.makeDir("\(u)/\(parent)/\(id)") }
        return placement(for: id)
    }

    static func inheritCpuset(_ path: String) throws {
        let parentDir = String(path[..<(path.utf8.lastIndex(of: UInt8(ascii: "/")) ?? path.endIndex)])
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = CgroupFS.read("\(path)/\(file)") ?? ""
            if !mine.isEmpty { continue }
            let value = CgroupFS.read("\(parentDir)/\(file)") ?? ""
            try CgroupFS.write("\(path)/\(file)", value.isEmpty ? "\n" : value)
        }
    }

    public func remove(_ id: String) throws {
        let p = placement(for: id)
        if let k = p.killFile, k.hasSuffix("cgroup.kill"), FS.exists(k) {
            try? CgroupFS.write(k, "1")
        }
        if let first = mounts.first {
            CgroupFS.killAll(procs: "\(dir(first, id))/cgroup.procs") { try? self.thaw(id) }
        }
        try? thaw(id)
        var failure: (any Error)?
        for d in p.removeDirs where FS.isDirectory(d) {
            do { try CgroupFS.removeDir(d) } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    func thaw(_ id: String) throws {
        let p = placement(for: id)
        guard let f = p.freezer, FS.exists(f) else { return }
        try CgroupFS.write(f, p.freezerIsV2 ? "0" : "THAWED")
    }

    public func setFrozen(_ id: String, _ frozen: Bool) throws {
        let p = placement(for: id)
        guard let f = p.freezer else { throw HakoError(.unsupported(missing: "the freezer cgroup controller"), "no freezer cgroup on this host") }
        if p.freezerIsV2 {
            try CgroupFS.write(f, frozen ? "1" : "0")
        } else {
            try CgroupFS.write(f, frozen ? "FROZEN" : "THAWED")
        }
        for _ in 0..<400 {
            if isFrozen(id) == frozen { return }
            usleep(2500)
        }
    }

    public func isFrozen(_ id: String) -> Bool {
        let p = placement(for: id)
        guard let f = p.freezer else { return false }
        if p.freezerIsV2 {
            let events = CgroupFS.read(f.replacing("cgroup.freeze", with: "cgroup.events")) ?? ""
            return events.split(separator: "\n").contains("frozen 1")
        }
        return CgroupFS.read(f) == "FROZEN"
    }

    public func processes(_ id: String) -> [Int32] {
        guard let first = mounts.first else { return [] }
        return CgroupFS.pids("\(dir(first, id))/cgroup.procs")
    }
}
