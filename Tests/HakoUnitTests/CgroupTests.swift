#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
@testable import HakoRuntime
import HakoSystem
import Testing

/// mountinfo of a cgroup v1 "hybrid" host like the development machines.
let hybridMountinfo = """
24 1 0:22 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

let unifiedMountinfo = """
24 1 0:22 / / rw,relatime - ext4 /dev/mmcblk0p2 rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

@Suite struct CgroupTests {
    @Test func detectsAHybridHost() {
        let h = CgroupHost.parse(mountinfo: hybridMountinfo)
        #expect(h.mode == .hybrid)
        #expect(h.unified == "/sys/fs/cgroup/unified")
        #expect(h.v1Mount("memory") == "/sys/fs/cgroup/memory")
        #expect(h.v1Mount("name=systemd") == "/sys/fs/cgroup/systemd")
        #expect(h.v1.count == 7)
    }

    @Test func detectsAUnifiedHost() {
        let h = CgroupHost.parse(mountinfo: unifiedMountinfo)
        #expect(h.mode == .unified)
        #expect(h.unified == "/sys/fs/cgroup")
        #expect(CgroupHost.parse(mountinfo: "").mode == .none)
    }

    @Test func oddMountinfoLines() {
        let text = """
        24 1 0:22 / /mnt/a-b rw,relatime shared:1 - ext4 /dev/vda rw
        50 31 0:40 / /sys/fs/cgroup/my\\040pids rw,relatime shared:9 master:2 - cgroup cgroup rw,pids
        51 31 0:41 / /sys/fs/cgroup/odd rw - cgroupfoo x rw,cpu
        52 31 0:42 / /sys/fs/cgroup/cut rw - cgroup
        53 31 0:43 /sys/fs/cgroup/bad - cgroup cgroup rw,blkio
        54 31 0:44 / /sys/fs/cgroup/unified rw - cgroup2  rw
        """
        let h = CgroupHost.parse(mountinfo: text)
        #expect(h.v1.count == 1 && h.v1Mount("pids") == "/sys/fs/cgroup/my pids", "\(h.v1)")
        #expect(h.unified == "/sys/fs/cgroup/unified", "an empty source field is a field")
    }

    @Test func v2Placement() throws {
        let d = try makeCgroupDriver(host: CgroupHost.parse(mountinfo: unifiedMountinfo), parent: "hako/test")
        let p = d.placement(for: "c1")
        #expect(p.unifiedDir == "/sys/fs/cgroup/hako/test/c1")
        #expect(p.procsFiles.isEmpty)
        #expect(p.killFile == "/sys/fs/cgroup/hako/test/c1/cgroup.kill")
        #expect(p.freezer == "/sys/fs/cgroup/hako/test/c1/cgroup.freeze" && p.freezerIsV2)
        #expect(p.oomEvents == "/sys/fs/cgroup/hako/test/c1/memory.events")
        #expect(p.removeDirs == ["/sys/fs/cgroup/hako/test/c1"], "the parent stays")
    }

    @Test func v1Placement() throws {
        let d = try makeCgroupDriver(host: CgroupHost.parse(mountinfo: hybridMountinfo), parent: "hako")
        let p = d.placement(for: "c1")
        #expect(p.unifiedDir == "/sys/fs/cgroup/unified/hako/c1")
        #expect(p.procsFiles.contains("/sys/fs/cgroup/memory/hako/c1/cgroup.procs"))
        #expect(p.procsFiles.count == 6, "every hierarchy with a controller; not name=systemd")
        #expect(!p.procsFiles.contains { $0.contains("/systemd/") })
        #expect(p.freezer == "/sys/fs/cgroup/freezer/hako/c1/freezer.state" && !p.freezerIsV2)
        #expect(p.oomEvents == "/sys/fs/cgroup/memory/hako/c1/memory.oom_control")
        #expect(p.killFile == "/sys/fs/cgroup/unified/hako/c1/cgroup.kill")
        #expect(p.removeDirs.first == "/sys/fs/cgroup/cpu/hako/c1")
        #expect(p.removeDirs.last == "/sys/fs/cgroup/unified/hako/c1")
        #expect(p.removeDirs.count == 7)
    }

    /// What a container sees at /sys/fs/cgroup: its own directories only, read-only.
    @Test func containerViewOnV1() throws {
        let joined = hybridMountinfo + "\n42 31 0:39 / /sys/fs/cgroup/net_cls,net_prio rw,relatime - cgroup cgroup rw,net_cls,net_prio\n"
        let d = try makeCgroupDriver(host: CgroupHost.parse(mountinfo: joined), parent: "hako")
        let view = d.view(of: "c1")
        #expect(view.unified == nil)
        #expect(view.hierarchies.map(\.name) == ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls,net_prio", "unified"])
        #expect(view.hierarchies.first { $0.name == "memory" }?.directory == "/sys/fs/cgroup/memory/hako/c1")
        #expect(view.hierarchies.last?.directory == "/sys/fs/cgroup/unified/hako/c1")
        #expect(view.aliases == [.init(name: "net_cls", target: "net_cls,net_prio"), .init(name: "net_prio", target: "net_cls,net_prio")])
        let m = view.mounts(at: "/sys/fs/cgroup", readOnly: true, ownNamespace: false)
        #expect(m.first?.fstype == "tmpfs" && (m.first?.flags ?? 0) & HAKO_MS_RDONLY == 0, "the tmpfs is writable until its mount points exist")
        #expect(m.dropFirst().prefix(8).allSatisfy { $0.kind == .bind && $0.flags & HAKO_MS_RDONLY != 0 && $0.flags & HAKO_MS_REC == 0 })
        try #require(m.count == 1 + 8 + 2 + 1, "\(m.map(\.target))")
        #expect(m[9].kind == .symlink && m[9].target == "/sys/fs/cgroup/net_cls")
        #expect(m.last?.target == "/sys/fs/cgroup" && (m.last?.flags ?? 0) & (HAKO_MS_REMOUNT | HAKO_MS_RDONLY) == HAKO_MS_REMOUNT | HAKO_MS_RDONLY)
        let writable = view.mounts(at: "/sys/fs/cgroup", readOnly: false, ownNamespace: false)
        #expect(writable.count == 1 + 8 + 2 && writable.allSatisfy { $0.flags & HAKO_MS_RDONLY == 0 })
    }

    @Test func containerViewOnV2() throws {
        let d = try makeCgroupDriver(host: CgroupHost.parse(mountinfo: unifiedMountinfo), parent: "hako")
        let view = d.view(of: "c1")
        #expect(view == CgroupView(unified: "/sys/fs/cgroup/hako/c1"))
        // Its own namespace: cgroup2, rooted there by the kernel.
        let own = view.mounts(at: "/sys/fs/cgroup", readOnly: true, ownNamespace: true)
        #expect(own.count == 1 && own[0].kind == .filesystem && own[0].fstype == "cgroup2" && own[0].flags & HAKO_MS_RDONLY != 0)
        // The host's namespace: its directory bound (not the whole hierarchy).
        let shared = view.mounts(at: "/sys/fs/cgroup", readOnly: true, ownNamespace: false)
        #expect(shared.count == 1 && shared[0].kind == .bind && shared[0].source == "/sys/fs/cgroup/hako/c1" && shared[0].flags & HAKO_MS_RDONLY != 0)
    }

    @Test func badParentsAreRefused() {
        let h = CgroupHost.parse(mountinfo: unifiedMountinfo)
        #expect(throws: HakoError.self) { try makeCgroupDriver(host: h, parent: "../escape") }
        #expect(throws: HakoError.self) { try makeCgroupDriver(host: h, parent: "a/../../escape") }
        #expect((try? makeCgroupDriver(host: h, parent: "/hako//test/"))?.parent == "hako/test")
        #expect((try? makeCgroupDriver(host: h, parent: "..x/y"))?.parent == "..x/y")
        #expect(throws: HakoError.self) { try makeCgroupDriver(host: h, parent: "///") }
        #expect(throws: HakoError.self) { try makeCgroupDriver(host: CgroupHost.parse(mountinfo: ""), parent: "hako") }
    }

    /// The v2 driver against a fake cgroup tree in a temp dir: the exact files it writes.
    @Test func v2DriverOnAFakeTree() throws {
        var template = Array("/tmp/hako-fakecg-XXXXXX".utf8CString)
        let base = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        defer { try? FS.removeTree(base) }
        let host = CgroupHost(unified: base, v1: [])
        let d = CgroupV2Driver(host: host, parent: "hako")
        let p = try d.create("c1")
        #expect(FS.isDirectory(base + "/hako/c1"))
        #expect(p.unifiedDir == base + "/hako/c1")
        // A real kernel creates cgroup.events; the fake one starts frozen=0.
        try FS.writeAtomic(base + "/hako/c1/cgroup.events", "populated 1\nfrozen 1\n", durable: false)
        try FS.writeAtomic(base + "/hako/c1/cgroup.freeze", "0\n", durable: false)
        try d.setFrozen("c1", true)
        #expect(try FS.readString(base + "/hako/c1/cgroup.freeze").trimmed == "1")
        #expect(d.isFrozen("c1"))
    }
}
