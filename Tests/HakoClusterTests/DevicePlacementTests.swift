#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import HakoCluster
import Testing

/// What an agent reports of its devices: the paths the coordinator asks
/// about and its agent.toml `devices`, each if it is a character or block
/// device (a symlink to one under the name asked for), less `deny_devices`;
/// nothing for a hostile path. No root: /dev/null is the device, symlinks to
/// it in a temp dir stand for a Pi's /dev/serial0 and the like.
@Suite struct DeviceReportTests {
    let dir = TempDir("devices")

    func symlink(_ name: String, to target: String = "/dev/null") -> String {
        let p = dir.path + "/" + name
        Glibc.symlink(target, p)
        return p
    }

    func file(_ name: String) -> String {
        let p = dir.path + "/" + name
        _ = FileManager.default.createFile(atPath: p, contents: Data("x".utf8))
        return p
    }

    @Test func aRequestedPathIsReportedOnlyWhenItIsADevice() {
        let none = NodeDevices(offered: [])
        let link = symlink("serial0")
        let regular = file("i2c-1")
        let dangling = symlink("gone", to: dir.path + "/missing")
        let dirLink = symlink("tmp", to: dir.path)
        #expect(none.report(requested: ["/dev/null"]) == ["/dev/null"])
        #expect(none.report(requested: [link]) == [link], "a symlink to a device, under its own name")
        #expect(none.report(requested: [regular, dir.path + "/missing", dangling, dirLink, dir.path]).isEmpty,
                "a regular file, a missing path, a dangling symlink, a directory")
        #expect(none.report(requested: [regular, "/dev/null", link, "/dev/null"]) == ["/dev/null", link].sorted())
    }

    @Test func hostilePathsAreNotLookedAt() {
        let none = NodeDevices(offered: [])
        let hostile = ["dev/null", "null", "", "/dev/../dev/null", "/dev/./../dev/null", "/dev/null\0/etc/shadow", "/dev/null\n",
                       "/" + String(repeating: "a/", count: 3000) + "null", "/" + String(repeating: "a", count: 300),
                       String(repeating: "/", count: 5000)]
        #expect(none.report(requested: hostile).isEmpty)
        for h in hostile where h != "/" + String(repeating: "a", count: 300) { #expect(!DeviceRequest.isAcceptable(h), "\(h.prefix(40))") }
        // The acceptable paths are looked at, the rest skipped, in one list.
        #expect(none.report(requested: hostile + ["/dev/null"]) == ["/dev/null"])
    }

    @Test func offeredPatternsAreReportedWithTheRequestedOnes() {
        let a = symlink("ttyUSB0")
        _ = file("ttyUSB1")
        let devices = NodeDevices(offered: [dir.path + "/ttyUSB*", dir.path + "/nothing*"])
        #expect(devices.report(requested: []) == [a])
        #expect(devices.report(requested: ["/dev/null"]) == ["/dev/null", a].sorted())
    }

    @Test func atMost256AreReportedTheRequestedFirst() {
        let many = (0..<300).map { symlink(String(format: "dev%03d", $0)) }
        let offered = symlink("zz-offered")
        let devices = NodeDevices(offered: [offered])
        let r = devices.report(requested: many)
        #expect(r.count == DeviceRequest.maxPaths)
        #expect(r == Array(many.prefix(DeviceRequest.maxPaths)), "the first 256 asked about; no room left for the offered one")
        #expect(devices.report(requested: Array(many.prefix(10))) == Array(many.prefix(10)) + [offered])
    }

    @Test func denyDevicesRefusesEveryNameOfADevice() {
        let link = symlink("serial0")
        let hidden = symlink(".hidden")
        let denyNull = NodeDevices(offered: [link], denied: ["/dev/null"])
        #expect(denyNull.report(requested: ["/dev/null", link, hidden, "/dev/zero"]) == ["/dev/zero"],
                "/dev/null itself, a symlink to it, and a hidden one: the same device numbers")
        #expect(denyNull.refusal(["/dev/zero", link]) == "device \(link) is refused by this node (agent.toml deny_devices)")
        #expect(denyNull.refusal(["/dev/zero", dir.path + "/missing"]) == nil, "a missing device is the engine's to report")
        // A pattern refuses what it names, even a device that is not there to take numbers from.
        let denyDir = NodeDevices(offered: [], denied: [dir.path + "/*"])
        #expect(denyDir.report(requested: [link, "/dev/null"]) == [],
                "the pattern matches the symlink, and /dev/null is the device the pattern names through it")
        let denyMissing = NodeDevices(offered: [], denied: ["/dev/ttyNONE*"])
        #expect(denyMissing.report(requested: [link, "/dev/null"]) == ["/dev/null", link].sorted())
        #expect(NodeDevices(offered: []).refusal([link]) == nil)
    }

    @Test func agentConfigReadsDenyDevices() throws {
        let c = try AgentConfig.parse(try ConfigFile(parsing: """
            devices = ["/dev/ttyS0"]
            deny_devices = ["/dev/ttyAMA0", "/dev/mmcblk*"]
            """))
        #expect(c.nodeDevices == NodeDevices(offered: ["/dev/ttyS0"], denied: ["/dev/ttyAMA0", "/dev/mmcblk*"]))
        #expect(try AgentConfig.parse(ConfigFile()).denyDevices.isEmpty)
        for bad in ["deny_devices = [\"ttyAMA0\"]", "deny_devices = [\"/dev/../etc/x\"]", "devices = [\"dev/i2c-1\"]"] {
            #expect(throws: ClusterError.self, "\(bad)") { try AgentConfig.parse(try ConfigFile(parsing: bad)) }
        }
    }
}

/// The coordinator's side: the device paths the services name, sent to every
/// node when they change and at each session's start; placement following
/// what each node reports.
@Suite struct DevicePlacementTests {
    func service(_ name: String, devices: [String], replicas: Int = 1) -> ServiceSpec {
        var s = ServiceSpec(name: name, image: "busybox:test")
        s.replicas = replicas
        s.container.devices = devices.map { ServiceDevice(host: $0) }
        return s
    }

    @Test func theRequestIsTheServicesDevicesSentWhenItChanges() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "n1"), try SimNode(f, name: "n2")]
        try settle(f, nodes)
        #expect(nodes.map(\.deviceRequests) == [[[]], [[]]], "at the session's start, even when empty")
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: service("a", devices: ["/dev/ttyS0", "/dev/i2c-1"])), as: ServiceView.self)
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: service("b", devices: ["/dev/i2c-1"])), as: ServiceView.self)
        try settle(f, nodes)
        #expect(f.core.requestedDevices() == ["/dev/i2c-1", "/dev/ttyS0"])
        #expect(nodes.allSatisfy { $0.deviceRequests.last == ["/dev/i2c-1", "/dev/ttyS0"] })
        let sent = nodes.map(\.deviceRequests.count)
        _ = try f.admin(MessageType.serviceScale, ServiceScaleRequest(service: "a", replicas: 0), as: ServiceView.self)
        try settle(f, nodes)
        #expect(nodes.map(\.deviceRequests.count) == sent, "unchanged: not sent again")
        // A new session gets it again; the other node does not.
        nodes[0].disconnect()
        try nodes[0].connect()
        try settle(f, nodes)
        #expect(nodes[0].deviceRequests.count == sent[0] + 1 && nodes[1].deviceRequests.count == sent[1])
        _ = try f.admin(MessageType.serviceRemove, ServiceRef(service: "a"), as: EmptyBody.self)
        try settle(f, nodes)
        #expect(nodes.allSatisfy { $0.deviceRequests.last == ["/dev/i2c-1"] })
    }

    @Test func placementFollowsWhatANodeReports() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "n1", devices: []), try SimNode(f, name: "n2", devices: ["/dev/gpiomem"])]
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: service("sensor", devices: ["/dev/ttyS0"], replicas: 2)), as: ServiceView.self)
        var reader = service("reader", devices: ["/dev/ttyS0"])
        reader.mode = .global
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: reader), as: ServiceView.self)
        try settle(f, nodes)
        #expect(nodes.map(\.live.count) == [0, 0])
        let waiting = try f.admin(MessageType.servicePs, ServicePsRequest(service: "sensor", all: false), as: TaskList.self).tasks
        #expect(waiting.allSatisfy { $0.message == "no suitable node (device /dev/ttyS0 missing on 2 nodes)" }, "\(waiting.map(\.message))")
        // n2 answers the request: it has the device (besides the one its config offers).
        let ok = try nodes[1].reportDevices(["/dev/gpiomem", "/dev/ttyS0"])
        #expect(ok.type == MessageType.reply)
        try settle(f, nodes)
        #expect(nodes.map(\.live.count) == [0, 3], "both replicas and the global task")
        #expect(try f.admin(MessageType.nodeInspect, NodeRef(node: "n2"), as: NodeView.self).devices == ["/dev/gpiomem", "/dev/ttyS0"])
        // Reported by n1 too: the global service follows; the replicas stay where they run.
        try nodes[0].reportDevices(["/dev/ttyS0"])
        try settle(f, nodes)
        #expect(nodes.map(\.live.count) == [1, 3])
        // A report replaces the last one, in memory: nothing is written to the store (nor through Raft) for it.
        #expect(f.core.state.batch.nodes.isEmpty)
        _ = f.core.handle(try envelope(MessageType.devicesReport, DeviceReport(sessionID: nodes[0].session, devices: [])),
                          from: .node(nodes[0].id), connection: nodes[0].connection, address: "x")
        #expect(f.core.state.nodes[nodes[0].id]?.devices == [] && f.core.state.batch.nodes.isEmpty)
    }

    @Test func badReportsAreRefused() throws {
        let f = try CoreFixture()
        let n = try SimNode(f, name: "n1")
        #expect(try n.reportDevices(["/dev/ttyS0"], session: "stale").error?.code == .conflict)
        for bad in [["dev/ttyS0"], ["/dev/../etc/shadow"], ["/dev/tty\0S0"], ["/" + String(repeating: "a", count: 4096)],
                    (0...DeviceRequest.maxPaths).map { "/dev/tty\($0)" }] {
            #expect(try n.reportDevices(bad).error?.code == .badRequest, "\(bad.first?.prefix(20) ?? "")")
        }
        #expect(f.core.state.nodes[n.id]?.devices == nil, "nothing taken from a refused report")
        #expect(try n.reportDevices((0..<DeviceRequest.maxPaths).map { "/dev/tty\($0)" }).type == MessageType.reply)
    }

    @Test func servicesNameAtMost256Devices() throws {
        let f = try CoreFixture()
        let many = (0..<DeviceRequest.maxPaths).map { "/dev/tty\($0)" }
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: service("a", devices: Array(many.prefix(200)))), as: ServiceView.self)
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: service("b", devices: Array(many.suffix(56)) + ["/dev/tty0"])),
                        as: ServiceView.self)
        #expect(throws: ClusterError.self) {
            try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: service("c", devices: ["/dev/i2c-1"])), as: ServiceView.self)
        }
        // An update may trade its own devices for others.
        let b = try f.admin(MessageType.serviceInspect, ServiceRef(service: "b"), as: ServiceView.self)
        var spec = b.spec
        spec.container.devices = [ServiceDevice(host: "/dev/i2c-1")]
        _ = try f.admin(MessageType.serviceUpdate, ServiceUpdateRequest(service: "b", spec: spec, version: b.version), as: ServiceView.self)
        #expect(f.core.requestedDevices().count == 201)
        #expect(throws: ClusterError.self) { try ServiceDevice(parsing: "/" + String(repeating: "a", count: 4095)) }
    }
}
