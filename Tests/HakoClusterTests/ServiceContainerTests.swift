@testable import HakoCluster
import HakoImage
import HakoEngine
import HakoNetwork
import HakoSystem
import Testing

/// A service's container options: the flags' syntax, the checks a spec
/// passes, what the agent asks of the engine, and devices steering placement.
@Suite struct ServiceContainerTests {
    @Test func mountsAsDockerWritesThem() throws {
        let v = try ServiceMount(parsing: "type=volume,source=data,target=/var/lib/data,volume-driver=local")
        #expect(v == ServiceMount(type: .volume, source: "data", target: "/var/lib/data"))
        #expect(v.mountRequest == MountRequest(kind: .volume, source: "data", target: "/var/lib/data"))
        let b = try ServiceMount(parsing: "type=bind,src=/srv/conf,dst=/etc/app,readonly,bind-propagation=rslave")
        #expect(b.type == .bind && b.source == "/srv/conf" && b.readOnly && b.propagation == "rslave")
        #expect(b.mountRequest.kind == .bind && b.mountRequest.source == "/srv/conf" && b.mountRequest.target == "/etc/app")
        #expect(b.mountRequest.readOnly && b.mountRequest.propagation == .rslave && !b.mountRequest.createHostPath)
        let t = try ServiceMount(parsing: "type=tmpfs,target=/cache,tmpfs-size=64m")
        #expect(t.tmpfsSize == 64 << 20 && t.source == nil)
        let anonymous = try ServiceMount(parsing: "target=/scratch")
        #expect(anonymous.type == .volume && anonymous.source == nil)

        for bad in ["type=volume,source=data", "type=nfs,target=/x", "type=volume,source=a/b,target=/x", "type=bind,source=rel,target=/x",
                    "type=tmpfs,source=x,target=/x", "type=volume,source=d,target=/", "type=volume,source=d,target=rel",
                    "type=volume,source=d,target=/x,volume-driver=nfs", "type=volume,source=d,target=/x,tmpfs-size=1m",
                    "type=volume,source=d,target=/x,bind-propagation=rshared", "type=bind,source=/a,target=/x,bind-propagation=up",
                    "type=volume,source=d,target=/x,colour=red", "type=volume,source=d,target=/x,readonly=maybe"] {
            #expect(throws: ClusterError.self, "\(bad)") { try ServiceMount(parsing: bad) }
        }
    }

    @Test func devicesAsDockerWritesThem() throws {
        #expect(try ServiceDevice(parsing: "/dev/gpiomem") == ServiceDevice(host: "/dev/gpiomem", container: "/dev/gpiomem", permissions: "rwm"))
        #expect(try ServiceDevice(parsing: "/dev/i2c-1:/dev/i2c-0:rw") == ServiceDevice(host: "/dev/i2c-1", container: "/dev/i2c-0", permissions: "rw"))
        #expect(try ServiceDevice(parsing: "/dev/ttyUSB0:r") == ServiceDevice(host: "/dev/ttyUSB0", container: "/dev/ttyUSB0", permissions: "r"))
        #expect(try ServiceDevice(parsing: "/dev/i2c-1:/dev/i2c-1:rw").deviceMapping == .init(host: "/dev/i2c-1", container: "/dev/i2c-1", permissions: "rw"))
        for bad in ["dev/x", "/dev/x:/dev/y:rx", "/dev/x:/dev/y:rr", "/", "/a:/b:r:w", "/dev/x::r"] {
            #expect(throws: ClusterError.self, "\(bad)") { try ServiceDevice(parsing: bad) }
        }
    }

    @Test func templatesAsSwarmsAndUnknownFieldsRefused() throws {
        let t = TaskTemplate(serviceID: "sid", serviceName: "web", serviceLabels: ["tier": "front"], nodeID: "nid", nodeHostname: "pi3",
                             os: "linux", architecture: "arm64", taskID: "tid", taskName: "web.2.tid", taskSlot: "2")
        #expect(try t.render("{{.Service.Name}}-{{.Task.Slot}}", what: "--hostname") == "web-2")
        #expect(try t.render("{{ .Node.Hostname }}.{{.Node.ID}}/{{.Service.Labels.tier}}{{.Service.Labels.none}}", what: "--env") == "pi3.nid/front")
        #expect(try t.render("no template", what: "--env") == "no template")
        #expect(throws: ClusterError.self) { try t.render("{{.Task.Colour}}", what: "--env") }
        #expect(throws: ClusterError.self) { try t.render("{{.Task.Slot", what: "--env") }

        var spec = ServiceSpec(name: "web", image: "busybox")
        spec.env = ["NODE={{.Node.Hostname}}"]
        spec.container.hostname = "{{.Service.Name}}-{{.Task.Slot}}"
        try spec.validate()
        spec.env = ["X={{.Nope}}"]
        #expect(throws: ClusterError.self) { try spec.validate() }
    }

    @Test func specsStoredBeforeTheOptionsDecodeWithDefaults() throws {
        let old = #"{"name":"web","image":"busybox","labels":{"a":"b"},"replicas":2}"#
        let s = try Wire.decodeJSON(ServiceSpec.self, from: Array(old.utf8))
        #expect(s.container == ServiceContainerOptions() && s.serviceLabels.isEmpty && s.labels == ["a": "b"] && s.replicas == 2)
        var full = ServiceSpec(name: "web", image: "busybox")
        full.container.mounts = [ServiceMount(type: .volume, source: "data", target: "/data")]
        full.container.devices = [ServiceDevice(host: "/dev/i2c-1")]
        full.container.sysctls = ["net.core.somaxconn": "1024"]
        full.serviceLabels = ["com.docker.stack.namespace": "home"]
        #expect(try Wire.decodeJSON(ServiceSpec.self, from: try Wire.encodeJSON(full)) == full)
    }

    @Test func aServiceLabelChangeKeepsTheTasksUnlessATemplateReadsIt() {
        var a = ServiceSpec(name: "web", image: "busybox")
        var b = a
        b.serviceLabels["owner"] = "me"
        #expect(!b.needsNewTasks(comparedTo: a))
        a.env = ["OWNER={{.Service.Labels.owner}}"]
        b.env = a.env
        #expect(b.needsNewTasks(comparedTo: a))
    }

    @Test func invalidOptionsAreRefusedWithTheField() {
        func refused(_ change: (inout ServiceSpec) -> Void) -> String {
            var s = ServiceSpec(name: "web", image: "busybox")
            change(&s)
            do { try s.validate() } catch { return error.description }
            return ""
        }
        #expect(refused { $0.container.dns = ["dns.example"] }.contains("--dns"))
        #expect(refused { $0.container.sysctls = ["a=b": "1"] }.contains("--sysctl"))
        #expect(refused { $0.container.mounts = [ServiceMount(type: .volume, source: "data", target: "/x"), ServiceMount(type: .tmpfs, source: nil, target: "/x/")] }
            .contains("duplicate mount target"))
        #expect(refused { $0.container.pidsLimit = -1 }.contains("pids"))
        #expect(refused { $0.container.hostname = "{{.Node.Name}}" }.contains("unknown field"))
        #expect(refused { $0.container.hostname = "web {{.Task.Slot}}" }.contains("invalid --hostname"))
    }

    func options(node: String = "n1", _ change: (inout ServiceSpec) -> Void) throws -> ContainerSpec {
        var spec = ServiceSpec(name: "home_web", image: "busybox")
        change(&spec)
        let a = Assignment(taskID: "abcdefghijklmnopqrstuvwxy", serviceID: "sid", name: "home_web.2", slot: 2, version: 1, spec: spec,
                           desired: .running, state: .assigned)
        return try EngineTaskRuntime.containerSpec(a, node: node, dns: IPv4Address("10.88.1.1"), hostname: "pi3")
    }

    @Test func theAgentAsksTheEngineForEachOption() throws {
        let o = try options {
            $0.env = ["WHERE={{.Node.Hostname}}", "PLAIN=1"]
            $0.container.hostname = "{{.Service.Name}}-{{.Task.Slot}}"
            $0.container.mounts = [ServiceMount(type: .volume, source: "home_data", target: "/data"),
                                   ServiceMount(type: .tmpfs, source: nil, target: "/tmp", readOnly: false)]
            $0.container.devices = [ServiceDevice(host: "/dev/i2c-1", container: "/dev/i2c-1", permissions: "rw")]
            $0.container.dns = ["10.88.1.1", "9.9.9.9"]
            $0.container.dnsSearch = ["lan"]
            $0.container.dnsOptions = ["ndots:2"]
            $0.container.sysctls = ["net.ipv4.ip_forward": "1", "net.core.somaxconn": "1024"]
            $0.container.capAdd = ["NET_ADMIN"]
            $0.container.capDrop = ["MKNOD"]
            $0.container.readOnly = true
            $0.container.initProcess = true
            $0.container.pidsLimit = 50
            $0.serviceLabels = [ServiceSpec.stackNamespaceLabel: "home"]
        }
        #expect(o.process.env == ["WHERE=pi3", "PLAIN=1"])
        #expect(o.hostname == "home_web-2")
        #expect(o.mounts == [MountRequest(kind: .volume, source: "home_data", target: "/data"), MountRequest(kind: .tmpfs, source: "", target: "/tmp")])
        #expect(o.isolation.devices == [.init(host: "/dev/i2c-1", container: "/dev/i2c-1", permissions: "rw")])
        #expect(o.networking.dns.map(\.description) == ["10.88.1.1", "9.9.9.9"], "the node's responder first, once")
        #expect(o.networking.dnsSearch == ["lan", "home"], "a stack's tasks search its domain")
        #expect(o.networking.dnsOptions == ["ndots:2"])
        #expect(o.isolation.sysctls == [.init(key: "net.core.somaxconn", value: "1024"), .init(key: "net.ipv4.ip_forward", value: "1")])
        #expect(o.isolation.capAdd == ["NET_ADMIN"] && o.isolation.capDrop == ["MKNOD"])
        #expect(o.isolation.readOnlyRoot && o.process.initProcess && o.resources.pidsLimit == 50)
        #expect(!o.labels.keys.contains { $0.hasPrefix(ServiceSpec.stackNamespaceLabel) }, "service labels are not the containers'")

        let plain = try options { _ in }
        #expect(plain.hostname == nil && plain.mounts.isEmpty && plain.networking.dnsSearch.isEmpty && !plain.process.initProcess)
        #expect(plain.networking.dns.map(\.description) == ["10.88.1.1"])
    }

    @Test func stackShortNames() {
        var s = ServiceSpec(name: "home_web", image: "x")
        #expect(s.stackNamespace == nil && s.stackShortName == nil)
        s.serviceLabels[ServiceSpec.stackNamespaceLabel] = "home"
        #expect(s.stackNamespace == "home" && s.stackShortName == "web")
        s.name = "other"
        #expect(s.stackShortName == nil)
    }

    @Test func theSchedulerPlacesByReportedDevices() {
        func node(_ name: String, devices: [String]?) -> SchedulerNode {
            var r = NodeRecord(id: "id-" + name, name: name, hostname: name, platform: PlatformSpec(architecture: "arm64"), labels: [:],
                               capacity: Resources(cpuMillis: 4000, memory: 4 << 30), availability: .active, subnet: "", address: "",
                               agentVersion: "", created: 0, updated: 0)
            r.devices = devices
            return SchedulerNode(record: r, status: .ready)
        }
        var snap = ClusterSnapshot(nodes: [node("a", devices: nil), node("b", devices: ["/dev/i2c-1"]), node("c", devices: ["/dev/gpiomem"])])
        var rng = SeededRandom(seed: 3)
        let reqs = (1...3).map {
            SchedulingRequest(taskID: "t\($0)", serviceID: "s", group: "s", reservations: .zero, constraints: [], platforms: [], devices: ["/dev/i2c-1"])
        }
        let placed = Scheduler().schedule(reqs, on: &snap, using: &rng)
        #expect(placed.allSatisfy { $0.nodeID == "id-b" })
        let none = SchedulingRequest(taskID: "x", serviceID: "s2", group: "s2", reservations: .zero, constraints: [], platforms: [], devices: ["/dev/video0"])
        let p = Scheduler().schedule([none], on: &snap, using: &rng)
        #expect(p.first?.nodeID == nil && p.first?.reason == "no suitable node (device /dev/video0 missing on 3 nodes)")
    }

    @Test func replicatedAndGlobalServicesGoOnlyWhereTheDeviceIs() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "n1"), try SimNode(f, name: "n2", devices: ["/dev/i2c-1"]), try SimNode(f, name: "n3", devices: [])]
        var sensor = ServiceSpec(name: "sensor", image: "busybox:test")
        sensor.replicas = 2
        sensor.container.devices = [ServiceDevice(host: "/dev/i2c-1")]
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: sensor), as: ServiceView.self)
        var reader = ServiceSpec(name: "reader", image: "busybox:test")
        reader.mode = .global
        reader.container.devices = [ServiceDevice(host: "/dev/i2c-1")]
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: reader), as: ServiceView.self)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [0, 3, 0])
        let inspect = try f.admin(MessageType.nodeInspect, NodeRef(node: "n2"), as: NodeView.self)
        #expect(inspect.devices == ["/dev/i2c-1"])
    }
}
