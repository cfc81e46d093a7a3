import Foundation
@testable import HakoCluster
import HakoImage
import Testing

/// Rolling updates as Swarm's (`Orchestrator+Rollout.swift`), driven through
/// the core with simulated nodes and the manual clock: the order's bounds on
/// the running count, the health and monitor gates, the delay, the failure
/// actions, rollbacks, and the status `service inspect` shows.
@Suite struct RolloutTests {
    func service(_ f: CoreFixture, replicas: Int = 3, configure: (inout ServiceSpec) -> Void = { _ in }) throws -> ServiceView {
        var spec = ServiceSpec(name: "web", image: "busybox:1")
        spec.replicas = replicas
        spec.restartDelay = 0
        configure(&spec)
        return try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
    }

    func inspect(_ f: CoreFixture) throws -> ServiceView {
        try f.admin(MessageType.serviceInspect, ServiceRef(service: "web"), as: ServiceView.self)
    }

    @discardableResult
    func update(_ f: CoreFixture, _ change: (inout ServiceSpec) -> Void) throws -> ServiceView {
        let v = try inspect(f)
        var spec = v.spec
        change(&spec)
        return try f.admin(MessageType.serviceUpdate, ServiceUpdateRequest(service: "web", spec: spec, version: v.version), as: ServiceView.self)
    }

    func ps(_ f: CoreFixture) throws -> [TaskView] {
        try f.admin(MessageType.servicePs, ServicePsRequest(service: "web", all: true), as: TaskList.self).tasks
    }

    /// Tasks the nodes run, by image.
    func running(_ f: CoreFixture, _ nodes: [SimNode]) throws -> [String: Int] {
        let images = Dictionary(try ps(f).map { ($0.id, $0.image) }, uniquingKeysWith: { a, _ in a })
        var out: [String: Int] = [:]
        for id in nodes.flatMap(\.live) { out[images[id] ?? "?", default: 0] += 1 }
        return out
    }

    /// Time passes in half seconds, the nodes beating and acting; `observe` sees every step.
    func pass(_ seconds: Double, _ f: CoreFixture, _ nodes: [SimNode], observe: () throws -> Void = {}) throws {
        for _ in 0..<Int(seconds * 2) {
            f.clock.advance(0.5)
            for n in nodes { try n.heartbeat() }
            try settle(f, nodes)
            try observe()
        }
    }

    /// Reports a health status for every running task of the image.
    func report(_ health: String, image: String, _ f: CoreFixture, _ nodes: [SimNode]) throws {
        let images = Dictionary(try ps(f).map { ($0.id, $0.image) }, uniquingKeysWith: { a, _ in a })
        for n in nodes {
            let mine = n.live.filter { images[$0] == image }
            guard !mine.isEmpty else { continue }
            try n.report(mine.map { TaskStatus(taskID: $0, state: .running, containerID: "c-" + $0, health: health) })
        }
    }

    /// Fails every running task of the image as its agent does an unhealthy one.
    func failUnhealthy(image: String, _ f: CoreFixture, _ nodes: [SimNode]) throws {
        let images = Dictionary(try ps(f).map { ($0.id, $0.image) }, uniquingKeysWith: { a, _ in a })
        for n in nodes {
            for id in n.live where images[id] == image {
                n.running[id] = .failed
                try n.report([TaskStatus(taskID: id, state: .failed, containerID: "c-" + id, message: "unhealthy container", health: "unhealthy")])
            }
        }
    }

    /// Stop-first (the default): never more than the replicas run, never fewer
    /// than replicas − parallelism; a task without a check counts as updated
    /// after the monitor period, and only then does the next one start.
    @Test func stopFirstKeepsTheCountWithinBoundsAndWaitsTheMonitorPeriod() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f)
        try settle(f, nodes)
        #expect(try running(f, nodes) == ["busybox:1": 3])
        let v = try update(f) { $0.image = "busybox:2" }
        #expect(v.rollout?.State == "updating" && v.previousSpec?.image == "busybox:1")
        try settle(f, nodes)
        #expect(try running(f, nodes) == ["busybox:1": 2, "busybox:2": 1], "one slot at a time, the old task stopped first")
        // Within the monitor period (5 s) the next slot waits.
        try pass(4, f, nodes)
        #expect(try running(f, nodes) == ["busybox:1": 2, "busybox:2": 1])
        var counts: [Int] = []
        try pass(20, f, nodes) { counts.append(nodes.flatMap(\.live).count) }
        #expect(try running(f, nodes) == ["busybox:2": 3])
        #expect(counts.allSatisfy { (2...3).contains($0) }, "\(counts)")
        let done = try inspect(f)
        #expect(done.rollout?.State == "completed" && done.rollout?.CompletedAt != nil && done.updateStatus == "completed")
        #expect(f.core.events.contains { $0.action == "completed" && $0.kind == "service" })
    }

    /// Start-first: the new task runs beside the old one, which stops once the
    /// new one is healthy: never fewer than the replicas, at most replicas + parallelism.
    @Test func startFirstStopsTheOldTaskOnceTheNewOneIsHealthy() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f) {
            $0.healthCheck = HealthCheck(test: .shell("true"), interval: .seconds(1))
            $0.update.order = .startFirst
            $0.update.parallelism = 2
        }
        try settle(f, nodes)
        try report("healthy", image: "busybox:1", f, nodes)
        try update(f) { $0.image = "busybox:2" }
        try settle(f, nodes)
        #expect(try running(f, nodes) == ["busybox:1": 3, "busybox:2": 2], "two new beside the three old")
        // Starting: nothing stops, however long it takes.
        try report("starting", image: "busybox:2", f, nodes)
        try pass(10, f, nodes)
        #expect(try running(f, nodes) == ["busybox:1": 3, "busybox:2": 2])
        var counts: [Int] = []
        for _ in 0..<6 {
            try report("healthy", image: "busybox:2", f, nodes)
            try settle(f, nodes)
            counts.append(nodes.flatMap(\.live).count)
        }
        #expect(try running(f, nodes) == ["busybox:2": 3])
        #expect(counts.allSatisfy { (3...5).contains($0) }, "\(counts)")
        #expect(try inspect(f).rollout?.State == "completed")
    }

    /// Start-first: a unit whose old task was told to stop stays in transition
    /// until the task has ended (its container runs through its stop timeout),
    /// so no more than replicas + parallelism run.
    @Test func startFirstWaitsForTheOldTaskToEnd() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 2) {
            $0.update.order = .startFirst
            $0.update.monitor = 0
        }
        try settle(f, nodes)
        try update(f) { $0.image = "busybox:2" }
        f.core.tick()
        let out = f.core.takeOutgoing()
        for n in nodes { try n.act(out) }
        // The new task runs; the nodes now take their time to stop anything.
        for n in nodes { n.frozen = true }
        try settle(f, nodes)
        let tasks = try ps(f)
        let stopping = tasks.filter { $0.version == 1 && $0.desired == .shutdown && $0.state == .running }
        #expect(stopping.count == 1 && tasks.filter { $0.version == 2 }.count == 1, "\(tasks.map { ($0.slot, $0.version, $0.desired, $0.state) })")
        for n in nodes { n.frozen = false }
        try settle(f, nodes, rounds: 50)
        #expect(try running(f, nodes) == ["busybox:2": 2])
    }

    /// The default failure action: a new task that turns unhealthy pauses the
    /// update after the first one, the rest untouched; `service update` starts it again.
    @Test func aFailingTaskPausesTheUpdateAndAnUpdateResumesIt() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f) { $0.healthCheck = HealthCheck(test: .shell("test -f /ok"), interval: .seconds(1), retries: 1) }
        try settle(f, nodes)
        try report("healthy", image: "busybox:1", f, nodes)
        try update(f) { $0.image = "busybox:bad" }
        try settle(f, nodes)
        try report("starting", image: "busybox:bad", f, nodes)
        try pass(2, f, nodes)
        try failUnhealthy(image: "busybox:bad", f, nodes)
        try settle(f, nodes)
        let v = try inspect(f)
        let failed = try #require(try ps(f).first { $0.image == "busybox:bad" && $0.state == .failed })
        #expect(v.rollout?.State == "paused" && v.updateStatus == "paused", "\(String(describing: v.rollout))")
        #expect(v.rollout?.Message == "update paused due to failure or early termination of task \(failed.id.prefix(12))")
        // The other slots keep the old version, however long.
        try pass(10, f, nodes) { try failUnhealthy(image: "busybox:bad", f, nodes) }
        #expect(try running(f, nodes)["busybox:1"] == 2)
        #expect(try ps(f).filter { $0.image == "busybox:bad" }.allSatisfy { $0.slot == failed.slot })

        // `service update` (nothing changed) is a new update.
        let again = try update(f) { _ in }
        #expect(again.rollout?.State == "updating" && again.version == v.version)
    }

    /// `--update-failure-action rollback`: the previous spec comes back; the
    /// tasks still running it stay as they are, the failed slot gets one again.
    @Test func aFailingUpdateRollsBackToFullCount() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f) {
            $0.healthCheck = HealthCheck(test: .shell("test -f /ok"), interval: .seconds(1), retries: 1)
            $0.update.failureAction = .rollback
        }
        try settle(f, nodes)
        try report("healthy", image: "busybox:1", f, nodes)
        let before = Set(nodes.flatMap(\.live))
        try update(f) { $0.image = "busybox:bad" }
        try settle(f, nodes)
        try failUnhealthy(image: "busybox:bad", f, nodes)
        try settle(f, nodes)
        var v = try inspect(f)
        #expect(v.rollout?.State == "rollback_started" && v.spec.image == "busybox:1" && v.previousSpec?.image == "busybox:bad")
        #expect(v.version == 3 && v.rollout?.Message.hasPrefix("update rolled back due to failure or early termination of task") == true)
        try report("healthy", image: "busybox:1", f, nodes)
        try settle(f, nodes)
        try report("healthy", image: "busybox:1", f, nodes)
        try settle(f, nodes)
        #expect(try running(f, nodes) == ["busybox:1": 3])
        #expect(before.isSubset(of: Set(nodes.flatMap(\.live))) == false, "the stopped slot has a new task")
        #expect(Set(nodes.flatMap(\.live)).intersection(before).count == 2, "the two untouched tasks run on")
        v = try inspect(f)
        #expect(v.rollout?.State == "rollback_completed" && v.rollout?.Message == "rollback completed")
        #expect(try ps(f).filter { $0.desired == .running && $0.state == .running }.allSatisfy { $0.version == 3 })
    }

    /// `service rollback`; the max failure ratio with `continue`; parallelism 0; the delay between batches.
    @Test func manualRollbackRatioParallelismZeroAndDelay() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 4) {
            $0.update.parallelism = 0
            $0.update.monitor = 1
            $0.update.failureAction = .continue
            $0.rollback.parallelism = 2
            $0.rollback.delay = 10
            $0.rollback.monitor = 1
        }
        #expect(throws: ClusterError.self) { try f.admin(MessageType.serviceRollback, ServiceRef(service: "web"), as: ServiceView.self) }
        try settle(f, nodes)
        try update(f) { $0.image = "busybox:2" }
        try settle(f, nodes)
        #expect(try running(f, nodes) == ["busybox:2": 4], "all at once")
        // One of the four fails at once: continue.
        let n = try #require(nodes.first { !$0.live.isEmpty })
        let id = try #require(n.live.first)
        n.running[id] = .failed
        try n.report([TaskStatus(taskID: id, state: .failed, containerID: "c-" + id, exitCode: 1)])
        try pass(3, f, nodes)
        var v = try inspect(f)
        #expect(v.rollout?.State == "completed", "continue: \(String(describing: v.rollout))")

        // Back to busybox:1, two slots at a time, 10 s between the batches (the rollback config of the spec rolled back from).
        v = try f.admin(MessageType.serviceRollback, ServiceRef(service: "web"), as: ServiceView.self)
        #expect(v.spec.image == "busybox:1" && v.rollout?.State == "rollback_started" && v.rollout?.Message == "manually requested rollback")
        try settle(f, nodes)
        #expect(try running(f, nodes) == ["busybox:2": 2, "busybox:1": 2])
        try pass(5, f, nodes)
        #expect(try running(f, nodes) == ["busybox:2": 2, "busybox:1": 2], "the delay: 1 s monitor + 10 s")
        try pass(8, f, nodes)
        #expect(try running(f, nodes) == ["busybox:1": 4])
        try pass(2, f, nodes)
        #expect(try inspect(f).rollout?.State == "rollback_completed")
        // Rolling back again swaps again.
        #expect(try inspect(f).previousSpec?.image == "busybox:2")
    }

    /// Global services roll node by node with the same rules.
    @Test func globalServicesRollNodeByNode() throws {
        let f = try CoreFixture()
        let nodes = try (1...3).map { try SimNode(f, name: "n\($0)") }
        var spec = ServiceSpec(name: "web", image: "busybox:1")
        spec.mode = .global
        spec.update.monitor = 1
        try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
        try settle(f, nodes)
        try update(f) { $0.image = "busybox:2" }
        var counts: [Int] = []
        try pass(8, f, nodes) { counts.append(nodes.flatMap(\.live).count) }
        #expect(try running(f, nodes) == ["busybox:2": 3] && nodes.allSatisfy { $0.live.count == 1 })
        #expect(counts.allSatisfy { (2...3).contains($0) }, "\(counts)")
        #expect(try inspect(f).rollout?.State == "completed")
    }

    @Test func specsDecodeOldRowsAndRefuseBadConfigs() throws {
        // A row from before the update config: its parallelism, start-first as it rolled then.
        let old = try JSONDecoder().decode(ServiceSpec.self, from: Data(#"{"name":"web","image":"i","updateParallelism":3}"#.utf8))
        #expect(old.update.parallelism == 3 && old.update.order == .startFirst && old.rollback == UpdateConfig())
        let bare = try JSONDecoder().decode(ServiceSpec.self, from: Data(#"{"name":"web","image":"i"}"#.utf8))
        #expect(bare.update.order == .stopFirst && bare.update.failureAction == .pause && bare.update.monitor == 5 && bare.update.parallelism == 1)
        let record = try JSONDecoder().decode(ServiceRecord.self, from: Data(#"{"id":"s","spec":{"name":"web","image":"i"},"version":1,"created":0,"updated":0}"#.utf8))
        #expect(record.previousSpec == nil && record.updateStatus == nil)
        var spec = ServiceSpec(name: "web", image: "i")
        spec.update = UpdateConfig()
        spec.update.delay = 3
        spec.rollback.order = .startFirst
        #expect(try JSONDecoder().decode(ServiceSpec.self, from: JSONEncoder().encode(spec)) == spec)
        // Changing only how updates go needs no new tasks.
        var other = spec
        other.update.parallelism = 0
        other.rollback.failureAction = .continue
        #expect(!other.needsNewTasks(comparedTo: spec))
        for bad: (inout ServiceSpec) -> Void in [{ $0.update.parallelism = -1 }, { $0.update.maxFailureRatio = 1.5 }, { $0.update.monitor = -1 },
                                                  { $0.rollback.failureAction = .rollback }, { $0.update.delay = -2 }] {
            var s = spec
            bad(&s)
            #expect(throws: ClusterError.self) { try s.validate() }
        }
    }

    /// The previous spec, the update status and when a task began to serve survive a restart of the coordinator.
    @Test func rolloutStateIsStored() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        _ = try service(f, replicas: 2)
        try settle(f, nodes)
        try update(f) { $0.image = "busybox:2" }
        try settle(f, nodes)
        let before = try inspect(f)
        let serving = f.core.state.tasks.values.filter { $0.servingSince != nil }.map(\.id)
        #expect(!serving.isEmpty)
        try f.reopen()
        let after = try inspect(f)
        #expect(after.rollout == before.rollout && after.previousSpec == before.previousSpec && after.previousSpec?.image == "busybox:1")
        #expect(Set(f.core.state.tasks.values.filter { $0.servingSince != nil }.map(\.id)) == Set(serving))
    }
}
