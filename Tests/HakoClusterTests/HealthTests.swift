import Foundation
@testable import HakoCluster
import HakoImage
import Testing

/// Services with health checks: the agent turns an unhealthy container into
/// a failed task (stopped, replaced, counted), and the mesh and the service
/// names route only to healthy tasks.
@Suite struct ServiceHealthTests {
    func assignment(_ id: String, desired: DesiredState = .running, state: TaskState = .running) -> Assignment {
        var spec = ServiceSpec(name: "web", image: "i")
        spec.stopTimeout = 7
        return Assignment(taskID: id, serviceID: "s", name: "web.1", slot: 1, version: 1, spec: spec, desired: desired, state: state)
    }

    @Test func theAgentStopsAnUnhealthyContainerAndReportsTheTaskFailed() {
        let a = assignment("t")
        let sick = ObservedTask(taskID: "t", containerID: "c", status: .running, health: "unhealthy")
        let (actions, statuses) = AgentPlanner.plan(assignments: [a], observed: [sick], busy: [])
        #expect(actions == [.stop(taskID: "t", containerID: "c", timeout: 7)])
        #expect(statuses.first?.state == .failed && statuses.first?.message == "unhealthy container", "\(statuses)")
        // Once stopped, the container still says why (the monitor keeps the last status).
        let stopped = ObservedTask(taskID: "t", containerID: "c", status: .exited, exitCode: 143, health: "unhealthy")
        #expect(AgentPlanner.status(a, stopped)?.message == "unhealthy container")
        #expect(AgentPlanner.status(a, stopped)?.state == .failed)
        // Still failed while it is being stopped for its replacement.
        #expect(AgentPlanner.status(assignment("t", desired: .shutdown, state: .failed), sick)?.state == .failed)
        // Starting and healthy tasks run on, their health reported.
        for h in ["starting", "healthy"] {
            let ok = ObservedTask(taskID: "t", containerID: "c", status: .running, health: h)
            let (acts, st) = AgentPlanner.plan(assignments: [a], observed: [ok], busy: [])
            #expect(acts.isEmpty && st.first?.state == .running && st.first?.health == h)
        }
    }

    @Test func onlyHealthyTasksAreRoutedAndAnUnhealthyOneIsReplaced() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)", underlay: "10.0.0.\($0)") }
        var spec = ServiceSpec(name: "web", image: "busybox:test")
        spec.replicas = 2
        spec.ingress = ["9090:80"]
        spec.restartDelay = 0
        spec.healthCheck = HealthCheck(test: .shell("test -f /ok"), interval: .seconds(1), retries: 2)
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
        try settle(f, nodes)
        let tasks = nodes.flatMap { n in n.live.map { (n, $0) } }
        try #require(tasks.count == 2)
        for (i, (n, t)) in tasks.enumerated() {
            try n.report([TaskStatus(taskID: t, state: .running, containerID: "c-" + t, address: "10.88.\(i).2", health: "starting")])
        }
        #expect(f.core.meshPorts().first?.endpoints == [], "no task is healthy yet")
        #expect(f.core.serviceNames()["web"] == nil)
        try tasks[0].0.report([TaskStatus(taskID: tasks[0].1, state: .running, containerID: "c-" + tasks[0].1, health: "healthy")])
        try tasks[1].0.report([TaskStatus(taskID: tasks[1].1, state: .running, containerID: "c-" + tasks[1].1, health: "healthy")])
        #expect(f.core.meshPorts().first?.endpoints == ["10.88.0.2", "10.88.1.2"])
        #expect(f.core.serviceNames()["web"] == ["10.88.0.2", "10.88.1.2"])

        // The first task's check fails: it leaves the mesh and the names, is failed, and its slot gets a new task.
        let (node, sick) = tasks[0]
        try node.report([TaskStatus(taskID: sick, state: .failed, containerID: "c-" + sick, message: "unhealthy container", health: "unhealthy")])
        #expect(f.core.meshPorts().first?.endpoints == ["10.88.1.2"])
        #expect(f.core.serviceNames()["web"] == ["10.88.1.2"])
        try settle(f, nodes)
        let ps = try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: true), as: TaskList.self).tasks
        let old = try #require(ps.first { $0.id == sick })
        #expect(old.state == .failed && old.message == "unhealthy container", "\(old)")
        let live = ps.filter { $0.state == .running || $0.state == .assigned || $0.state == .starting }
        #expect(live.count == 2 && !live.contains { $0.id == sick }, "\(ps.map { ($0.id, $0.state) })")
        #expect(f.core.events.contains { $0.action == "health_status" && $0.message == "healthy" })
    }

    @Test func specsKeepTheirCheckAndOldRowsDecode() throws {
        var spec = ServiceSpec(name: "web", image: "i")
        spec.healthCheck = HealthCheck(test: .exec(["/check"]), timeout: .seconds(2))
        let back = try JSONDecoder().decode(ServiceSpec.self, from: JSONEncoder().encode(spec))
        #expect(back == spec)
        let old = try JSONDecoder().decode(ServiceSpec.self, from: Data(#"{"name":"web","image":"i"}"#.utf8))
        #expect(old.healthCheck == nil)
        let task = try JSONDecoder().decode(TaskRecord.self, from: Data(#"{"id":"t","serviceID":"s","serviceName":"web","slot":1,"version":1,"spec":{"name":"web","image":"i"},"desired":"running","state":"running","message":"","created":0,"updated":0,"notBefore":0}"#.utf8))
        #expect(task.health == nil && task.servesTraffic)
        spec.healthCheck?.retries = -1
        #expect(throws: ClusterError.self) { try spec.validate() }
    }
}
