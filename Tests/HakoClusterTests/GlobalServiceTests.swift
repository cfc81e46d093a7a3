@testable import HakoCluster
import Testing

/// `--mode global`: one task on every eligible node, following joins,
/// drains, pauses, removals and label changes.
@Suite struct GlobalServiceTests {
    func global(_ f: CoreFixture, _ name: String = "agent", configure: (inout ServiceSpec) -> Void = { _ in }) throws -> ServiceView {
        var spec = ServiceSpec(name: name, image: "busybox:test")
        spec.mode = .global
        configure(&spec)
        return try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
    }

    func inspect(_ f: CoreFixture, _ name: String = "agent") throws -> ServiceView {
        try f.admin(MessageType.serviceInspect, ServiceRef(service: name), as: ServiceView.self)
    }

    @Test func oneTaskPerNodeFollowingJoinsDrainsAndRemovals() throws {
        let f = try CoreFixture()
        var nodes = try (1...3).map { try SimNode(f, name: "n\($0)") }
        _ = try global(f)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [1, 1, 1])
        var ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "agent", all: false), as: TaskList.self).tasks
        #expect(Set(ps.map(\.name)) == Set(nodes.map { "agent.\($0.id)" }) && ps.allSatisfy { $0.slot == 0 })
        #expect(try inspect(f).desired == 3 && inspect(f).running == 3)

        // A node joins: it gets one.
        nodes.append(try SimNode(f, name: "n4"))
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [1, 1, 1, 1])

        // Drained: its task stops and goes nowhere else. Paused: its task stays.
        try f.admin(MessageType.nodeUpdate, NodeUpdateRequest(node: "n1", availability: .drain), as: NodeView.self)
        try f.admin(MessageType.nodeUpdate, NodeUpdateRequest(node: "n2", availability: .pause), as: NodeView.self)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [0, 1, 1, 1])
        #expect(try inspect(f).desired == 2, "the active nodes")

        // Active again: a new task there.
        try f.admin(MessageType.nodeUpdate, NodeUpdateRequest(node: "n1", availability: .active), as: NodeView.self)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [1, 1, 1, 1])

        // A node removed: its tasks go with it, nothing is created elsewhere.
        nodes[3].disconnect()
        try f.admin(MessageType.nodeRemove, NodeRemoveRequest(node: "n4", force: true), as: EmptyBody.self)
        try settle(f, Array(nodes.prefix(3)))
        ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "agent", all: false), as: TaskList.self).tasks
        #expect(ps.count == 3 && Set(ps.compactMap(\.nodeID)) == Set(nodes.prefix(3).map(\.id)))

        // Scaling a global service, or changing its mode, is refused.
        #expect(throws: ClusterError.self) {
            try f.admin(MessageType.serviceScale, ServiceScaleRequest(service: "agent", replicas: 5), as: ServiceView.self)
        }
        var spec = try inspect(f).spec
        spec.mode = .replicated
        #expect(throws: ClusterError.self) {
            try f.admin(MessageType.serviceUpdate, ServiceUpdateRequest(service: "agent", spec: spec, version: nil, force: false), as: ServiceView.self)
        }
    }

    /// Constraints pick the nodes, and a label change moves the service with it.
    @Test func constraintsAndLabelChanges() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "n1", labels: ["sensor": "i2c"]), try SimNode(f, name: "n2"), try SimNode(f, name: "n3")]
        _ = try global(f) { $0.constraints = ["node.labels.sensor==i2c"] }
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [1, 0, 0])
        try f.admin(MessageType.nodeUpdate, NodeUpdateRequest(node: "n3", labelAdd: ["sensor": "i2c"]), as: NodeView.self)
        try f.admin(MessageType.nodeUpdate, NodeUpdateRequest(node: "n1", labelRemove: ["sensor"]), as: NodeView.self)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [0, 0, 1])
        #expect(try inspect(f).desired == 1)
    }

    /// An update rolls node by node, each new task started beside the old one;
    /// a node too small for the reservation keeps the task waiting, with the reason.
    @Test func rollingUpdateAndResources() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "n1"), try SimNode(f, name: "n2", capacity: Resources(cpuMillis: 4000, memory: 64 << 20))]
        let v = try global(f) {
            $0.reservations.memory = 128 << 20
            $0.update.monitor = 0
        }
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [1, 0])
        var ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "agent", all: false), as: TaskList.self).tasks
        #expect(ps.contains { $0.nodeID == nodes[1].id && $0.state == .pending && $0.message == "no suitable node (insufficient memory on 1 node)" })
        // Nothing pending reaches the node.
        #expect(f.core.assignment(for: nodes[1].id).isEmpty)

        var spec = v.spec
        spec.image = "busybox:new"
        spec.reservations = .zero
        try f.admin(MessageType.serviceUpdate, ServiceUpdateRequest(service: "agent", spec: spec, version: v.version, force: false), as: ServiceView.self)
        try settle(f, nodes)
        ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "agent", all: false), as: TaskList.self).tasks
        #expect(ps.count == 2 && ps.allSatisfy { $0.image == "busybox:new" && $0.state == .running })
        #expect(nodes.map { $0.live.count } == [1, 1])
        #expect(try inspect(f).updateStatus == "completed")
    }

    @Test func specRefusalsAndOldJSON() throws {
        var spec = ServiceSpec(name: "g", image: "i")
        spec.mode = .global
        spec.maxReplicasPerNode = 1
        #expect(throws: ClusterError.self) { try spec.validate() }
        let old = try Wire.decodeJSON(ServiceSpec.self, from: Array(#"{"name":"s","image":"i"}"#.utf8))
        #expect(old.mode == .replicated)
    }
}

/// `--mode replicated-job|global-job`: tasks that run to completion. One that
/// exits 0 is done; one that fails is replaced per the restart condition.
@Suite struct JobServiceTests {
    func job(_ f: CoreFixture, _ name: String, mode: ServiceMode, replicas: Int = 1) throws {
        var spec = ServiceSpec(name: name, image: "busybox:test")
        spec.mode = mode
        spec.replicas = replicas
        try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
    }

    func end(_ n: SimNode, _ id: String, _ state: TaskState, exit: Int32) throws {
        n.running[id] = state
        try n.report([TaskStatus(taskID: id, state: state, containerID: "c-" + id, exitCode: exit)])
    }

    func inspect(_ f: CoreFixture, _ name: String) throws -> ServiceView {
        try f.admin(MessageType.serviceInspect, ServiceRef(service: name), as: ServiceView.self)
    }

    /// Past the restart delay, the nodes beating all along.
    func pastRestartDelay(_ f: CoreFixture, _ nodes: [SimNode]) throws {
        for _ in 0..<12 {
            f.clock.advance(0.5)
            for n in nodes { try n.heartbeat() }
            try settle(f, nodes)
        }
    }

    @Test func replicatedJobRunsEachSlotToCompletion() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        try job(f, "migrate", mode: .replicatedJob, replicas: 3)
        try settle(f, nodes)
        let ids = nodes.flatMap { n in n.live.map { (n, $0) } }
        #expect(ids.count == 3)
        try end(ids[0].0, ids[0].1, .complete, exit: 0)
        try end(ids[1].0, ids[1].1, .complete, exit: 0)
        try end(ids[2].0, ids[2].1, .failed, exit: 1)
        try pastRestartDelay(f, nodes)
        // Only the failed slot runs again.
        let again = nodes.flatMap(\.live)
        try #require(again.count == 1)
        #expect(!ids.map(\.1).contains(again[0]))
        var v = try inspect(f, "migrate")
        #expect(v.completed == 2 && v.desired == 3)
        let n = try #require(nodes.first { $0.live.contains(again[0]) })
        try end(n, again[0], .complete, exit: 0)
        try pastRestartDelay(f, nodes)
        #expect(nodes.allSatisfy { $0.live.isEmpty })
        v = try inspect(f, "migrate")
        #expect(v.completed == 3 && v.running == 0)
    }

    @Test func globalJobRunsOncePerNodeIncludingNewOnes() throws {
        let f = try CoreFixture()
        var nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        try job(f, "prune", mode: .globalJob)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [1, 1])
        for n in nodes { for id in n.live { try end(n, id, .complete, exit: 0) } }
        try pastRestartDelay(f, nodes)
        #expect(nodes.allSatisfy { $0.live.isEmpty })
        nodes.append(try SimNode(f, name: "n3"))
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [0, 0, 1])
        #expect(try inspect(f, "prune").completed == 2)
        #expect(throws: ClusterError.self) {
            try f.admin(MessageType.serviceScale, ServiceScaleRequest(service: "prune", replicas: 2), as: ServiceView.self)
        }
    }
}
