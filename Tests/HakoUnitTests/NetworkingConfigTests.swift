import CHakoShim
import HakoNetwork
import HakoSystem
import Testing
@testable import HakoEngine

/// The engine's checks of a typed network attachment and mounts (the flags'
/// text is parsed in HakoCLI: Tests/HakoCLITests/ContainerFlagsTests.swift).
@Suite struct NetworkingConfigTests {
    @Test func defaultsAndAttachments() throws {
        typealias Attachment = ContainerSpec.NetworkAttachment
        #expect(try ContainerNetworking.make(Attachment(), mode: .bridge, exposed: [])?.networks.map(\.name) == ["bridge"])
        var o = Attachment()
        o.network = "back"; o.ip = IPv4Address("10.1.0.5"); o.aliases = ["db"]; o.publishAll = true
        o.ports = try PortBinding.parse("8080:80") + PortBinding.parse("53/udp")
        o.dns = [IPv4Address("192.0.2.53")].compactMap { $0 }
        o.extraHosts = [.init(name: "x", address: "192.0.2.1"), .init(name: "gw", address: "host-gateway")]
        let n = try #require(try ContainerNetworking.make(o, mode: .bridge, exposed: ["80/tcp", "443/tcp"]))
        #expect(n.networks == [NetworkJoin(name: "back", ip: .init("10.1.0.5"), aliases: ["db"])])
        #expect(n.requestedPorts.map(\.description) == ["0.0.0.0:8080->80/tcp", "0.0.0.0:0->53/udp", "0.0.0.0:0->443/tcp"])
        #expect(n.extraHosts.map(\.address) == ["192.0.2.1", "host-gateway"])
        #expect(try ContainerNetworking.make(Attachment(), mode: .none, exposed: []) == nil)
    }

    @Test func refusals() throws {
        func fails(_ f: (inout ContainerSpec.NetworkAttachment) throws -> Void, mode: NetworkMode = .bridge, _ needle: String) throws {
            var o = ContainerSpec.NetworkAttachment()
            try f(&o)
            do { _ = try ContainerNetworking.make(o, mode: mode, exposed: []); Issue.record("accepted: \(needle)") } catch let e as HakoError {
                #expect(e.message.contains(needle), "\(e.message)")
            }
        }
        try fails({ $0.ports = try PortBinding.parse("80") }, mode: .host, "conflicting options: publishing ports and --network host")
        try fails({ $0.mac = MACAddress("ff:ff:ff:ff:ff:ff") }, "invalid --mac-address")
        try fails({ $0.aliases = ["x"] }, "only supported for user-defined networks")
        try fails({ $0.network = "back"; $0.aliases = ["bad alias"] }, "invalid --network-alias")
        try fails({ $0.ports = try PortBinding.parse("8080:80") + PortBinding.parse("8080:81") }, "published twice")
        try fails({ $0.extraHosts = [.init(name: "bad host", address: "1.2.3.4")] }, "bad host name")
        try fails({ $0.extraHosts = [.init(name: "h", address: "nowhere")] }, "is not an IPv4 address")
    }
}

@Suite struct StorageConfigTests {
    @Test func imageVolumesBecomeAnonymousAndDuplicatesAreRefused() throws {
        let data = MountRequest(kind: .volume, source: "data", target: "/data")
        let s = try #require(try ContainerStorage.make([data], imageVolumes: ["/data", "/logs"]))
        #expect(s.mounts.map(\.target) == ["/data", "/logs"])
        #expect(s.mounts[1].anonymous && !s.mounts[0].anonymous)
        #expect(throws: HakoError.self) { try ContainerStorage.make([data, MountRequest(kind: .tmpfs, source: "", target: "/data/")], imageVolumes: []) }
    }

    /// What a typed filler (the agent, the Docker API) hands in is checked as the flags' parser checks it.
    @Test func typedRequestsAreChecked() throws {
        var bind = MountRequest(kind: .bind, source: "/no/such/path/here", target: "/x")
        #expect(throws: HakoError.self) { try ContainerStorage.make([bind], imageVolumes: []) }
        bind.createHostPath = true
        #expect(try ContainerStorage.make([bind], imageVolumes: [])?.mounts.count == 1, "-v makes a missing host directory")
        var tmpfsOnVolume = MountRequest(kind: .volume, source: "v", target: "/v")
        tmpfsOnVolume.tmpfsSize = 1 << 20
        var propagatedTmpfs = MountRequest(kind: .tmpfs, source: "", target: "/t")
        propagatedTmpfs.propagation = .rshared
        for bad in [MountRequest(kind: .volume, source: "a b", target: "/v"), MountRequest(kind: .tmpfs, source: "x", target: "/t"),
                    MountRequest(kind: .volume, source: "v", target: "relative"), MountRequest(kind: .bind, source: "rel", target: "/x"),
                    tmpfsOnVolume, propagatedTmpfs] {
            #expect(throws: HakoError.self, "\(bad)") { try ContainerStorage.make([bad], imageVolumes: []) }
        }
    }
}

@Suite struct BindPropagationTests {
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
