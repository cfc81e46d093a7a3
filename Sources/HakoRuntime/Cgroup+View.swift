import CHakoShim
import HakoSystem

/// A container's own cgroups as it sees them at /sys/fs/cgroup, the layout
/// Docker (runc) gives it, so that programs sizing themselves from their limits
/// (the JVM's heap, .NET, Node, Go's GOMAXPROCS and memory limit) find them:
/// - cgroup v2 host: a `cgroup2` mount when the container has a private cgroup
///   namespace (its root is the container's cgroup), else a bind of the
///   container's cgroup2 directory;
/// - cgroup v1 (and hybrid) host: a tmpfs holding a bind of the container's
///   directory in every hierarchy with a controller (and in the hybrid host's
///   cgroup2 mount), plus the aliases of joined hierarchies (cpu → cpu,cpuacct).
/// Read-only unless asked otherwise (--privileged).
public struct CgroupView: Sendable, Equatable {
    /// One hierarchy: its name under /sys/fs/cgroup and the container's directory in it.
    public struct Hierarchy: Sendable, Equatable {
        public var name: String
        public var directory: String
        public init(name: String, directory: String) { self.name = name; self.directory = directory }
    }
    public struct Alias: Sendable, Equatable {
        public var name: String
        public var target: String
        public init(name: String, target: String) { self.name = name; self.target = target }
    }

    /// v1 and hybrid hosts: the hierarchies bound under the tmpfs.
    public var hierarchies: [Hierarchy]
    public var aliases: [Alias]
    /// A cgroup2-only host: the container's directory.
    public var unified: String?

    public init(hierarchies: [Hierarchy] = [], aliases: [Alias] = [], unified: String? = nil) {
        self.hierarchies = hierarchies; self.aliases = aliases; self.unified = unified
    }

    /// The mounts that build the view at `dest`, in order. `ownNamespace`: the
    /// container has a cgroup namespace of its own, entered before its mounts
    /// are made (a cgroup2 mount is then rooted at its cgroup).
    public func mounts(at dest: String, readOnly: Bool, ownNamespace: Bool) -> [Mount] {
        let plain = HAKO_MS_NOSUID | HAKO_MS_NODEV | HAKO_MS_NOEXEC
        let ro = readOnly ? HAKO_MS_RDONLY : 0
        if let u = unified {
            if ownNamespace { return [.filesystem("cgroup2", at: dest, source: "cgroup", flags: plain | ro)] }
            return [.bind(u, at: dest, readOnly: readOnly, recursive: false, flags: plain)]
        }
        var out: [Mount] = [.filesystem("tmpfs", at: dest, source: "tmpfs", options: "mode=755", flags: plain)]
        for h in hierarchies { out.append(.bind(h.directory, at: dest + "/" + h.name, readOnly: readOnly, recursive: false, flags: plain)) }
        for a in aliases { out.append(.symlink(dest + "/" + a.name, pointingTo: a.target)) }
        // The tmpfs itself goes read-only last, once its mount points exist (runc's order).
        if readOnly { out.append(.remount(dest, flags: plain | HAKO_MS_RDONLY)) }
        return out
    }
}

extension CgroupDriver {
    /// Where container `id`'s cgroups are, as its /sys/fs/cgroup shows them (pure).
    public func view(of id: String) -> CgroupView {
        if let v2 = self as? CgroupV2Driver { return CgroupView(unified: v2.dir(id)) }
        guard let v1 = self as? CgroupV1Driver else { return CgroupView() }
        var view = CgroupView()
        for h in v1.host.v1 where h.controllers.contains(where: { !$0.hasPrefix("name=") }) {
            guard let name = h.mount.split(separator: "/").last.map(String.init) else { continue }
            view.hierarchies.append(.init(name: name, directory: v1.dir(h.mount, id)))
            // Joined controllers are reached by each one's name too (systemd makes these links).
            for c in h.controllers where c != name && !c.hasPrefix("name=") && !view.aliases.contains(where: { $0.name == c }) {
                view.aliases.append(.init(name: c, target: name))
            }
        }
        if let u = v1.host.unified, let name = u.split(separator: "/").last.map(String.init) {
            view.hierarchies.append(.init(name: name, directory: "\(u)/\(v1.parent)/\(id)"))
        }
        return view
    }
}
