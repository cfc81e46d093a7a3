@testable import HakoCluster
import Testing

/// The coordinator driven in-process: simulated agents, a manual clock, a
/// seeded generator — no sockets, no sleeping.
@Suite struct CoordinatorCoreTests {
    func service(_ f: CoreFixture, _ name: String = "web", replicas: Int, configure: (inout ServiceSpec) -> Void = { _ in }) throws -> ServiceView {
        var spec = ServiceSpec(name: name, image: "busybox:test")
        spec.replicas = replicas
        configure(&spec)
        return try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
    }

    func beat(_ nodes: [SimNode]) throws { for n in nodes { try n.heartbeat() } }

    /// Advances time in heartbeat-sized steps; `alive` nodes keep beating.
    func wait(_ f: CoreFixture, _ seconds: Double, alive: [SimNode], all: [SimNode]) throws {
        var t = 0.0
        while t < seconds {
            f.clock.advance(0.5)
            t += 0.5
            try beat(alive)
            try settle(f, all)
        }
    }

    @Test func placesAndSpreadsReplicas() throws {
        let f = try CoreFixture()
        let nodes = try (1...3).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 6)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count } == [2, 2, 2])
        let v = try f.admin(MessageType.serviceInspect, ServiceRef(service: "web"), as: ServiceView.self)
        #expect(v.running == 6 && v.runningCurrent == 6)
        // Subnets: one per node, in order.
        let list = try f.admin(MessageType.nodeList, EmptyBody(), as: NodeList.self).nodes
        #expect(Set(list.map(\.subnet)) == ["10.88.0.0/24", "10.88.1.0/24", "10.88.2.0/24"])
    }

    @Test func scalesUpAndDown() throws {
        let f = try CoreFixture()
        let nodes = try (1...3).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 2)
        try settle(f, nodes)
        try f.admin(MessageType.serviceScale, ServiceScaleRequest(service: "web", replicas: 7), as: ServiceView.self)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count }.reduce(0, +) == 7)
        #expect(nodes.map { $0.live.count }.max()! - nodes.map { $0.live.count }.min()! <= 1)
        try f.admin(MessageType.serviceScale, ServiceScaleRequest(service: "web", replicas: 1), as: ServiceView.self)
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count }.reduce(0, +) == 1)
        let ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks
        #expect(ps.count == 1 && ps[0].slot == 1)
    }

    /// `service scale web=0 --wait` waits for `stopping` to reach 0: the
    /// tasks no longer wanted that have not ended, except on a down node
    /// (they count as gone, as in Swarm).
    @Test func tasksBeingStoppedAreCountedUntilTheyEnd() throws {
        let f = try CoreFixture()
        let nodes = try (1...3).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 3)
        try settle(f, nodes)
        func inspect() throws -> ServiceView { try f.admin(MessageType.serviceInspect, ServiceRef(service: "web"), as: ServiceView.self) }
        #expect(try inspect().stopping == 0)
        try f.admin(MessageType.serviceScale, ServiceScaleRequest(service: "web", replicas: 0), as: ServiceView.self)
        f.core.tick()
        // Committed, not yet stopped by the nodes: none runs as wanted, three still run.
        let during = try inspect()
        #expect(during.running == 0 && during.stopping == 3)
        // One node is cut off before it hears of it; the others stop theirs.
        let out = f.core.takeOutgoing()
        let lost = nodes[0]
        lost.disconnect()
        for n in [nodes[1], nodes[2]] { try n.act(out) }
        try settle(f, [nodes[1], nodes[2]])
        #expect(lost.live.count == 1 && nodes[1].live.isEmpty && nodes[2].live.isEmpty)
        #expect(try inspect().stopping == 1, "the cut-off node's task has not ended")
        // Down past the grace period: its task counts as gone.
        try wait(f, 4, alive: [nodes[1], nodes[2]], all: [nodes[1], nodes[2]])
        #expect(try f.admin(MessageType.nodeList, EmptyBody(), as: NodeList.self).nodes.first { $0.name == "n1" }?.status == .down)
        #expect(try inspect().stopping == 0)
    }

    /// A node silent past the grace period: its tasks go elsewhere. Back
    /// again, it is told to stop them: no duplicate survives.
    @Test func failoverAndPartitionHeal() throws {
        let f = try CoreFixture()
        let nodes = try (1...3).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 3)
        try settle(f, nodes)
        let lost = nodes[0]
        let lostTasks = Set(lost.live)
        #expect(lostTasks.count == 1)
        // A blip shorter than the grace period moves nothing.
        try wait(f, 2.5, alive: [nodes[1], nodes[2]], all: nodes)
        #expect(Set(lost.live) == lostTasks && nodes[1].live.count == 1)
        try beat([lost])
        try settle(f, nodes)
        // Past the grace period the task is replaced on another node.
        lost.disconnect()
        try wait(f, 4, alive: [nodes[1], nodes[2]], all: [nodes[1], nodes[2]])
        #expect(nodes[1].live.count + nodes[2].live.count == 3)
        let ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: true), as: TaskList.self).tasks
        #expect(ps.contains { lostTasks.contains($0.id) && $0.state == .orphaned && $0.desired == .shutdown })
        // The partition heals: the node still runs its old task, and is told to stop it.
        #expect(Set(lost.live) == lostTasks)
        try lost.connect()
        try settle(f, nodes)
        #expect(lost.live.isEmpty)
        #expect(nodes.map { $0.live.count }.reduce(0, +) == 3)
        let running = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks
        #expect(Set(running.map(\.slot)) == [1, 2, 3] && running.allSatisfy { $0.state == .running })
    }

    /// Killed mid scale-up: a new coordinator on the same database converges to exactly the desired count.
    @Test func coordinatorRestartConverges() throws {
        let f = try CoreFixture()
        let nodes = try (1...3).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 2)
        try settle(f, nodes)
        try f.admin(MessageType.serviceScale, ServiceScaleRequest(service: "web", replicas: 20), as: ServiceView.self)
        f.core.tick()
        // Half the assignments reached the nodes before the crash.
        let out = f.core.takeOutgoing()
        try nodes[0].act(out)
        try f.reopen()
        for n in nodes { try n.connect() }
        try settle(f, nodes)
        #expect(nodes.map { $0.live.count }.reduce(0, +) == 20)
        let ids = nodes.flatMap(\.live)
        #expect(Set(ids).count == ids.count)
        let v = try f.admin(MessageType.serviceInspect, ServiceRef(service: "web"), as: ServiceView.self)
        #expect(v.running == 20)
    }

    /// Task addresses, the names and mesh made of them, why each node was
    /// chosen, and the events are in the store: a restarted coordinator has
    /// them before any node says hello again.
    @Test func aRestartedCoordinatorKnowsAddressesNamesAndEvents() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)", underlay: "10.0.0.\($0)") }
        _ = try service(f, replicas: 2) { $0.ingress = ["9090:80"] }
        try settle(f, nodes)
        for (i, n) in nodes.enumerated() {
            try n.report(n.live.map { TaskStatus(taskID: $0, state: .running, containerID: "c-" + $0, address: "10.88.\(i).2") })
        }
        let names = f.core.serviceNames()
        #expect(names["web"] == ["10.88.0.2", "10.88.1.2"])
        let mesh = f.core.meshPorts()
        let events = f.core.events
        let placements = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks.map(\.placement)
        #expect(placements.allSatisfy { $0?.hasPrefix("score ") == true }, "\(placements)")
        try f.reopen()
        #expect(f.core.serviceNames() == names, "names at once, before any hello")
        #expect(f.core.meshPorts() == mesh && mesh.first?.endpoints.count == 2)
        #expect(f.core.peerMap().count == 2, "the stored nodes stay in the overlay until their grace runs out")
        #expect(f.core.events == events && events.contains { $0.kind == "service" && $0.action == "created" })
        let again = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks.map(\.placement)
        #expect(Set(again.compactMap { $0 }) == Set(placements.compactMap { $0 }))
        // Nobody comes back: past the grace period the nodes and their names are gone.
        f.tick(7)
        #expect(f.core.serviceNames().isEmpty && f.core.peerMap().isEmpty)
    }

    /// Each new task starts before its predecessor stops; one slot at a time.
    @Test func rollingUpdateStartsFirst() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        let v1 = try service(f, replicas: 3) {
            $0.update.order = .startFirst
            $0.update.monitor = 0
        }
        try settle(f, nodes)
        var spec = v1.spec
        spec.env = ["VERSION=2"]
        for n in nodes { n.frozen = true }
        try f.admin(MessageType.serviceUpdate, ServiceUpdateRequest(service: "web", spec: spec, version: 1), as: ServiceView.self)
        try settle(f, nodes)
        var tasks = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks
        #expect(tasks.filter { $0.version == 2 }.count == 1, "one slot at a time")
        #expect(tasks.filter { $0.version == 1 && $0.state == .running && $0.desired == .running }.count == 3, "the old ones run until the new one does")
        for n in nodes { n.frozen = false }
        try settle(f, nodes, rounds: 50)
        tasks = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks
        #expect(tasks.count == 3 && tasks.allSatisfy { $0.version == 2 && $0.state == .running })
        #expect(nodes.map { $0.live.count }.reduce(0, +) == 3)
        let view = try f.admin(MessageType.serviceInspect, ServiceRef(service: "web"), as: ServiceView.self)
        #expect(view.version == 2 && view.updateStatus == "completed")
    }

    @Test func failedTasksAreReplacedPerPolicy() throws {
        let f = try CoreFixture()
        let node = try SimNode(f, name: "n1")
        _ = try service(f, replicas: 1) { $0.restartDelay = 5; $0.restartMaxAttempts = 2 }
        try settle(f, [node])
        let first = try #require(node.live.first)
        node.running[first] = .failed
        try node.report([TaskStatus(taskID: first, state: .failed, exitCode: 1, message: "exit code 1")])
        try settle(f, [node])
        #expect(node.live.isEmpty, "the replacement waits for the restart delay")
        try wait(f, 5.5, alive: [node], all: [node])
        let second = try #require(node.live.first)
        #expect(second != first)
        node.running[second] = .failed
        try node.report([TaskStatus(taskID: second, state: .failed, exitCode: 1)])
        try wait(f, 6, alive: [node], all: [node])
        #expect(node.live.isEmpty, "two failures: the limit is reached")
        // A task that completes is not replaced under on-failure.
        _ = try service(f, "job", replicas: 1) { $0.restartCondition = .onFailure; $0.restartDelay = 0 }
        try settle(f, [node])
        let job = try #require(node.live.first)
        node.running[job] = .complete
        try node.report([TaskStatus(taskID: job, state: .complete, exitCode: 0)])
        try wait(f, 2, alive: [node], all: [node])
        #expect(node.live.isEmpty)
    }

    @Test func onlyFailuresWithinTheRestartWindowCount() throws {
        let f = try CoreFixture()
        let node = try SimNode(f, name: "n1")
        _ = try service(f, replicas: 1) { $0.restartDelay = 0; $0.restartMaxAttempts = 2; $0.restartWindow = 10 }
        try settle(f, [node])
        // Failures 20 s apart: each is alone in its window, so each is replaced.
        for round in 0..<3 {
            let t = try #require(node.live.first, "round \(round): a task runs")
            node.running[t] = .failed
            try node.report([TaskStatus(taskID: t, state: .failed, exitCode: 1)])
            try wait(f, 20, alive: [node], all: [node])
            #expect(node.live.first != nil && node.live.first != t, "round \(round): replaced")
        }
        // Two failures within the window reach the limit, and the slot stays given up.
        let a = try #require(node.live.first)
        node.running[a] = .failed
        try node.report([TaskStatus(taskID: a, state: .failed, exitCode: 1)])
        try wait(f, 2, alive: [node], all: [node])
        let b = try #require(node.live.first)
        node.running[b] = .failed
        try node.report([TaskStatus(taskID: b, state: .failed, exitCode: 1)])
        try wait(f, 30, alive: [node], all: [node])
        #expect(node.live.isEmpty, "two failures within 10 s: given up, and still after the window has passed")
        // The spec refuses a negative window.
        #expect(throws: ClusterError.self) {
            var spec = ServiceSpec(name: "w", image: "x")
            spec.restartWindow = -1
            try spec.validate()
        }
    }

    @Test func unplacedTasksSayWhy() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "a", labels: ["zone": "b"]), try SimNode(f, name: "b", capacity: Resources(cpuMillis: 1000, memory: 128 << 20))]
        _ = try service(f, replicas: 1) { $0.constraints = ["node.labels.zone==a"] }
        try settle(f, nodes)
        let ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: false), as: TaskList.self).tasks
        #expect(ps.first?.state == .pending)
        #expect(ps.first?.message == "no suitable node (constraint node.labels.zone==a excludes 2 nodes)")
    }

    @Test func drainMovesTasks() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 4)
        try settle(f, nodes)
        try f.admin(MessageType.nodeUpdate, NodeUpdateRequest(node: "n1", availability: .drain), as: NodeView.self)
        try settle(f, nodes)
        #expect(nodes[0].live.isEmpty && nodes[1].live.count == 4)
    }

    /// Heartbeats live in memory: a thousand of them write nothing.
    @Test func heartbeatsNeverReachTheStore() throws {
        let f = try CoreFixture()
        let nodes = try (1...3).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 3)
        try settle(f, nodes)
        let before = f.core.store.totalChanges
        for _ in 0..<300 {
            f.clock.advance(1)
            for n in nodes { n.load.cpu = Double.random(in: 0...1); try n.heartbeat() }
            f.core.tick()
        }
        #expect(f.core.store.totalChanges == before)
    }

    @Test func nodeRemovalRevokesAndReleases() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 2)
        try settle(f, nodes)
        #expect(throws: ClusterError.self) { try f.admin(MessageType.nodeRemove, NodeRemoveRequest(node: "n1", force: false), as: EmptyBody.self) }
        nodes[0].disconnect()
        try wait(f, 4, alive: [nodes[1]], all: [nodes[1]])
        try f.admin(MessageType.nodeRemove, NodeRemoveRequest(node: "n1", force: false), as: EmptyBody.self)
        #expect(f.core.state.leases.values.contains(nodes[0].id) == false)
        let certs = f.core.state.certs.values.filter { $0.subject == nodes[0].id }
        #expect(!certs.isEmpty && certs.allSatisfy { $0.revoked })
        // The released subnet goes to the next node.
        let n3 = try SimNode(f, name: "n3")
        #expect(f.core.state.subnet(of: n3.id) == "10.88.0.0/24")
        try settle(f, [nodes[1], n3])
        #expect(nodes[1].live.count + n3.live.count == 2)
    }

    @Test func refusesBadServices() throws {
        let f = try CoreFixture()
        #expect(throws: ClusterError.self) { _ = try service(f, "bad name", replicas: 1) }
        #expect(throws: ClusterError.self) { _ = try service(f, replicas: 1) { $0.constraints = ["zone=a"] } }
        #expect(throws: ClusterError.self) { _ = try service(f, replicas: 1) { $0.restart = "sometimes" } }
        _ = try service(f, replicas: 1)
        #expect(throws: ClusterError.self) { _ = try service(f, replicas: 1) }
        #expect(throws: ClusterError.self) {
            try f.admin(MessageType.serviceUpdate, ServiceUpdateRequest(service: "web", spec: ServiceSpec(name: "web", image: "x"), version: 7), as: ServiceView.self)
        }
    }
}
