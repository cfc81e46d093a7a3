import CHakoShim
import HakoSystem
import Testing
@testable import HakoEngine

@Suite struct NetworkingConfigTests {
    @Test func defaultsAndFlags() throws {
        #expect(try ContainerNetworking.make(NetworkRunOptions(), mode: .bridge, exposed: [])?.networks.map(\.name) == ["bridge"])
        var o = NetworkRunOptions()
        o.network = "back"; o.ip = "10.1.0.5"; o.aliases = ["db"]; o.publish = ["8080:80", "53/udp"]; o.publishAll = true
        o.dns = ["192.0.2.53"]; o.addHosts = ["x:192.0.2.1", "gw=host-gateway"]
        let n = try #require(try ContainerNetworking.make(o, mode: .bridge, exposed: ["80/tcp", "443/tcp"]))
        #expect(n.networks == [NetworkJoin(name: "back", ip: .init("10.1.0.5"), aliases: ["db"])])
        #expect(n.requestedPorts.map(\.description) == ["0.0.0.0:8080->80/tcp", "0.0.0.0:0->53/udp", "0.0.0.0:0->443/tcp"])
        #expect(n.extraHosts.map(\.address) == ["192.0.2.1", "host-gateway"])
        #expect(try ContainerNetworking.make(NetworkRunOptions(), mode: .none, exposed: []) == nil)
    }

    @Test func refusals() {
        func fails(_ f: (inout NetworkRunOptions) -> Void, mode: NetworkMode = .bridge, _ needle: String) {
            var o = NetworkRunOptions()
            f(&o)
            do { _ = try ContainerNetworking.make(o, mode: mode, exposed: []); Issue.record("accepted: \(needle)") } catch let e as HakoError {
                #expect(e.message.contains(needle), "\(e.message)")
            } catch {}
        }
        fails({ $0.publish = ["80"] }, mode: .host, "conflicting options: publishing ports and --network host")
        fails({ $0.ip = "10.0.0.300" }, "invalid --ip")
        fails({ $0.mac = "ff:ff:ff:ff:ff:ff" }, "invalid --mac-address")
        fails({ $0.aliases = ["x"] }, "only supported for user-defined networks")
        fails({ $0.publish = ["8080:80", "8080:81"] }, "published twice")
        fails({ $0.dns = ["dns.example"] }, "invalid --dns")
        fails({ $0.addHosts = ["bad host:1.2.3.4"] }, "bad host name")
    }
}

@Suite struct StorageConfigTests {
    @Test func volumeFlag() throws {
        let bind = try ContainerStorage.parseVolume("/srv:/data:ro")
        #expect(bind.kind == .bind && bind.source == "/srv" && bind.target == "/data" && bind.readOnly && bind.createHostPath)
        let rel = try ContainerStorage.parseVolume("./x:/y")
        #expect(rel.kind == .bind && rel.source == FS.absolute("x"))
        let named = try ContainerStorage.parseVolume("cache:/var/cache/:nocopy")
        #expect(named.kind == .volume && named.source == "cache" && named.target == "/var/cache" && named.noCopy && !named.anonymous)
        let anon = try ContainerStorage.parseVolume("/anon")
        #expect(anon.kind == .volume && anon.anonymous && anon.source.count == 64)
        for bad in [":/x", "rel", "/a:relative", "/a:/", "/a:/x:bogus", "a b:/x", "/a:/b:ro:rw", "x:"] {
            #expect(throws: HakoError.self, "\(bad)") { try ContainerStorage.parseVolume(bad) }
        }
    }

    @Test func mountAndTmpfsFlags() throws {
        let t = try ContainerStorage.parseMount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777")
        #expect(t.kind == .tmpfs && t.tmpfsSize == 64 << 20 && t.tmpfsMode == 0o1777)
        let v = try ContainerStorage.parseMount("type=volume,src=v1,dst=/v,readonly")
        #expect(v.kind == .volume && v.source == "v1" && v.readOnly)
        let ro = try ContainerStorage.parseMount("type=bind,source=/,target=/host,readonly=false")
        #expect(ro.kind == .bind && !ro.readOnly && !ro.createHostPath)
        let f = try ContainerStorage.parseTmpfs("/run:size=8m,mode=755,exec")
        #expect(f.tmpfsSize == 8 << 20 && f.tmpfsMode == 0o755 && f.tmpfsExec)
        for bad in ["type=nfs,target=/x", "type=bind,target=/x", "type=tmpfs,source=x,target=/t", "type=volume,target=/x,tmpfs-mode=9",
                    "target=relative", "type=volume,target=/x,colour=blue", "type=bind,source=/no/such/path/here,target=/x"] {
            #expect(throws: HakoError.self, "\(bad)") { try ContainerStorage.parseMount(bad) }
        }
        for bad in ["relative", "/t:size=big", "/t:mode=999", "/t:colour"] {
            #expect(throws: HakoError.self, "\(bad)") { try ContainerStorage.parseTmpfs(bad) }
        }
    }

    @Test func imageVolumesBecomeAnonymousAndDuplicatesAreRefused() throws {
        var o = StorageRunOptions()
        o.volumes = ["data:/data"]
        let s = try #require(try ContainerStorage.make(o, imageVolumes: ["/data", "/logs"]))
        #expect(s.mounts.map(\.target) == ["/data", "/logs"])
        #expect(s.mounts[1].anonymous && !s.mounts[0].anonymous)
        o.tmpfs = ["/data/"]
        #expect(throws: HakoError.self) { try ContainerStorage.make(o, imageVolumes: []) }
    }
}

@Suite struct BindPropagationTests {
    @Test func volumeAndMountFlagsTakeAPropagation() throws {
        #expect(try ContainerStorage.parseVolume("/srv:/data").propagation == nil)
        #expect(try ContainerStorage.parseVolume("/srv:/data:ro,rshared").propagation == .rshared)
        #expect(try ContainerStorage.parseVolume("/srv:/data:slave,z").propagation == .slave)
        #expect(try ContainerStorage.parseMount("type=bind,source=/,target=/h,bind-propagation=rslave").propagation == .rslave)
        for bad in ["/srv:/data:rshared,rslave", "named:/data:rshared", "/srv:/data:bogus"] {
            #expect(throws: HakoError.self, "\(bad)") { try ContainerStorage.parseVolume(bad) }
        }
        for bad in ["type=bind,source=/,target=/h,bind-propagation=sideways", "type=volume,target=/v,bind-propagation=shared",
                    "type=tmpfs,target=/t,bind-propagation=rshared"] {
            #expect(throws: HakoError.self, "\(bad)") { try ContainerStorage.parseMount(bad) }
        }
    }

    @Test func flagsAreRecursiveOnlyForTheRForms() {
        #expect(BindPropagation.shared.mountFlags == HAKO_MS_SHARED)
        #expect(BindPropagation.rshared.mountFlags == HAKO_MS_SHARED | HAKO_MS_REC)
        #expect(BindPropagation.rslave.mountFlags == HAKO_MS_SLAVE | HAKO_MS_REC)
        #expect(BindPropagation.private.mountFlags == HAKO_MS_PRIVATE)
    }

    @Test func theRootSharesOnlyWhenABindSharesBack() {
        var s = ContainerStorage()
        var m = MountRequest(kind: .bind, source: "/srv", target: "/srv")
        m.propagation = .rslave
        s.mounts = [m]
        #expect(Engine.rootPropagation(s) == HAKO_MS_REC | HAKO_MS_SLAVE)
        s.mounts[0].propagation = .shared
        #expect(Engine.rootPropagation(s) == HAKO_MS_REC | HAKO_MS_SHARED)
        #expect(Engine.rootPropagation(nil) == HAKO_MS_REC | HAKO_MS_SLAVE)
    }

    static let table = MountInfo.parse("""
        22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
        30 22 0:40 / /mnt/shared rw shared:7 - tmpfs t rw
        31 22 0:41 / /mnt/slave rw master:7 - tmpfs t rw
        32 22 0:42 / /mnt/private rw - tmpfs t rw
        33 22 0:43 / /mnt/both rw shared:9 master:7 - tmpfs t rw
        34 22 0:44 / /mnt/with\\040space rw unbindable - tmpfs t rw
        35 30 0:45 / /mnt/shared/inner rw - tmpfs t rw
        """)

    @Test func mountinfoPropagationAndContainingMount() {
        let t = Self.table
        #expect(t.entries.count == 7)
        #expect(t.mount(containing: "/mnt/shared/x/y")?.propagation == .shared)
        #expect(t.mount(containing: "/mnt/shared/inner/z")?.mountPoint == "/mnt/shared/inner")
        #expect(t.mount(containing: "/mnt/sharedness")?.mountPoint == "/", "a mount point is a whole path component")
        #expect(t.mount(containing: "/mnt/slave")?.propagation == .slave)
        #expect(t.mount(containing: "/mnt/both/a")?.propagation == .sharedAndSlave)
        #expect(t.mount(containing: "/mnt/with space/a")?.propagation == .unbindable)
        #expect(t.mount(containing: "/mnt/private")?.propagation == .private)
        #expect(MountInfo.parse("garbage\n1 2 3\n").entries.isEmpty)
    }

    @Test func sourcesThatCannotPropagateAreRefused() throws {
        let t = Self.table, root = "/var/lib/hako/containers"
        try Engine.checkPropagationSource("/mnt/shared/d", .rshared, rootfs: root, mounts: t)
        try Engine.checkPropagationSource("/mnt/both/d", .shared, rootfs: root, mounts: t)
        try Engine.checkPropagationSource("/mnt/slave/d", .rslave, rootfs: root, mounts: t)
        try Engine.checkPropagationSource("/mnt/private/d", .rprivate, rootfs: root, mounts: t)
        #expect(throws: HakoError.self) { try Engine.checkPropagationSource("/mnt/slave/d", .rshared, rootfs: root, mounts: t) }
        #expect(throws: HakoError.self) { try Engine.checkPropagationSource("/mnt/private/d", .rslave, rootfs: root, mounts: t) }
        // "/" is shared but also holds the data root, which the container's namespace makes private.
        #expect(throws: HakoError.self) { try Engine.checkPropagationSource("/srv", .rshared, rootfs: root, mounts: t) }
        try Engine.checkPropagationSource("/srv", .rslave, rootfs: root, mounts: t)
    }
}
