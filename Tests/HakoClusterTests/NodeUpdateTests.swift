@testable import HakoCluster
import Testing

/// `node update` (availability, labels), `node ps`, and constraints following
/// label changes, on the coordinator driven in-process.
@Suite struct NodeUpdateTests {
    func service(_ f: CoreFixture, _ name: String = "web", replicas: Int, constraints: [String] = []) throws {
        var spec = ServiceSpec(name: name, image: "busybox:test")
        spec.replicas = replicas
        spec.constraints = constraints
        try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
    }

    func update(_ f: CoreFixture, _ r: NodeUpdateRequest) throws -> NodeView {
        try f.admin(MessageType.nodeUpdate, r, as: NodeView.self)
    }

    @Test func labelsAddedAndRemovedMoveConstrainedTasks() throws {
        let f = try CoreFixture()
        let nodes = try (1...3).map { try SimNode(f, name: "n\($0)") }
        try service(f, replicas: 2, constraints: ["node.labels.disk==ssd"])
        try settle(f, nodes)
        #expect(nodes.allSatisfy { $0.live.isEmpty })
        let ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks
        #expect(ps.allSatisfy { $0.message.contains("constraint node.labels.disk==ssd excludes 3 nodes") })

        let v = try update(f, NodeUpdateRequest(node: "n2", labelAdd: ["disk": "SSD", "rack": "r1"]))
        #expect(v.labels == ["disk": "SSD", "rack": "r1"])
        try settle(f, nodes)
        // Values compare as Swarm's do, without regard to case.
        #expect(nodes.map { $0.live.count } == [0, 2, 0])

        // The label goes: the constraint enforcer stops the tasks, and they wait for a node again.
        #expect(try update(f, NodeUpdateRequest(node: "n2", labelRemove: ["disk"])).labels == ["rack": "r1"])
        f.core.tick()
        let stopping = try f.admin(MessageType.nodePs, NodePsRequest(node: "n2", all: true), as: TaskList.self).tasks
        #expect(stopping.count == 2 && stopping.allSatisfy { $0.desired == .shutdown && $0.message == "node n2 no longer satisfies node.labels.disk==ssd" })
        try update(f, NodeUpdateRequest(node: "n3", labelAdd: ["disk": "ssd"]))
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [0, 0, 2])

        // Removing a label the node does not have is refused, and changes nothing else.
        #expect(throws: ClusterError.self) {
            try update(f, NodeUpdateRequest(node: "n3", labelAdd: ["zone": "a"], labelRemove: ["nope"]))
        }
        let n3 = try f.admin(MessageType.nodeInspect, NodeRef(node: "n3"), as: NodeView.self)
        #expect(n3.labels == ["disk": "ssd"])
    }

    /// The admin's changes stay over what the agent reports at every hello,
    /// and across a coordinator restart; the agent's other labels follow its config.
    @Test func adminLabelsSurviveReconnectsAndRestarts() throws {
        let f = try CoreFixture()
        let n = try SimNode(f, name: "n1", labels: ["zone": "a", "gpu": "no", "owner": "x"])
        try update(f, NodeUpdateRequest(node: "n1", labelAdd: ["gpu": "yes", "rack": "r2"], labelRemove: ["owner"]))
        n.labels = ["zone": "b", "gpu": "no", "owner": "x", "new": "1"]
        n.disconnect()
        try n.connect()
        var v = try f.admin(MessageType.nodeInspect, NodeRef(node: "n1"), as: NodeView.self)
        #expect(v.labels == ["zone": "b", "gpu": "yes", "rack": "r2", "new": "1"])
        try f.reopen()
        try n.connect()
        v = try f.admin(MessageType.nodeInspect, NodeRef(node: "n1"), as: NodeView.self)
        #expect(v.labels == ["zone": "b", "gpu": "yes", "rack": "r2", "new": "1"])
        // Adding back a removed agent label makes it the admin's.
        try update(f, NodeUpdateRequest(node: "n1", labelAdd: ["owner": "y"]))
        n.labels = ["zone": "b"]
        try n.connect()
        v = try f.admin(MessageType.nodeInspect, NodeRef(node: "n1"), as: NodeView.self)
        #expect(v.labels == ["zone": "b", "gpu": "yes", "rack": "r2", "owner": "y"])
    }

    /// Pause: no new tasks, the running ones stay. Drain: they move. `node ps` lists them.
    @Test func pauseKeepsTasksDrainMovesThem() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        try service(f, replicas: 2)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [1, 1])
        #expect(try update(f, NodeUpdateRequest(node: "n1", availability: .pause)).availability == .pause)
        try f.admin(MessageType.serviceScale, ServiceScaleRequest(service: "web", replicas: 4), as: ServiceView.self)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [1, 3])
        let onN1 = try f.admin(MessageType.nodePs, NodePsRequest(node: "n1", all: false), as: TaskList.self).tasks
        #expect(onN1.map(\.id) == nodes[0].live && onN1.allSatisfy { $0.nodeName == "n1" && $0.state == .running })

        try update(f, NodeUpdateRequest(node: "n2", availability: .pause))
        try f.admin(MessageType.serviceScale, ServiceScaleRequest(service: "web", replicas: 5), as: ServiceView.self)
        try settle(f, nodes)
        let ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks
        #expect(ps.contains { $0.state == .pending && $0.message == "no suitable node (2 nodes paused)" })

        try update(f, NodeUpdateRequest(node: "n2", availability: .active))
        try update(f, NodeUpdateRequest(node: "n1", availability: .drain))
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [0, 5])
        #expect(try f.admin(MessageType.nodePs, NodePsRequest(node: "n1", all: false), as: TaskList.self).tasks.isEmpty)
        #expect(try f.admin(MessageType.nodePs, NodePsRequest(node: "n1", all: true), as: TaskList.self).tasks.count == 1)
    }
}
