@testable import HakoCluster
import Testing

@Suite struct DispatcherTests {
    func make() -> Dispatcher { Dispatcher(period: 1, jitter: 0.2, suspectAfterMissed: 2, grace: 3) }

    @Test func suspectThenDown() {
        var d = make()
        d.open("n", session: "s", connection: 1, load: NodeLoad(), now: 0, interval: 1)
        #expect(d.status("n") == .ready)
        #expect(d.evaluate(now: 2.1).isEmpty, "two periods and the jitter are allowed")
        #expect(d.evaluate(now: 2.3).map(\.to) == [.suspect])
        // Unreachable from when the beat due at 1 did not come: down past 1 + 3.
        #expect(d.evaluate(now: 4.0).isEmpty)
        #expect(d.evaluate(now: 4.01).map(\.to) == [.down])
        #expect(d.beat("n", session: "s", load: NodeLoad(), tasks: [:], now: 4.5, interval: 1) == .down)
        #expect(d.status("n") == .ready)
    }

    /// A closed session counts from its close when that came before the next beat was due.
    @Test func aClosedSessionCountsFromTheClose() {
        var d = make()
        d.open("n", session: "s", connection: 1, load: NodeLoad(), now: 0, interval: 1)
        d.close("n", connection: 1, now: 0.5)
        #expect(d.evaluate(now: 3.5).map(\.to) == [.suspect])
        #expect(d.evaluate(now: 3.51).map(\.to) == [.down])
    }

    /// A blip shorter than the grace period never makes a node down.
    @Test func aShortBlipMovesNothing() {
        var d = make()
        d.open("n", session: "s", connection: 1, load: NodeLoad(), now: 0, interval: 1)
        d.close("n", connection: 1, now: 0)
        #expect(d.evaluate(now: 0.1).map(\.to) == [.suspect], "no session: no new tasks")
        d.open("n", session: "s2", connection: 2, load: NodeLoad(), now: 2.5, interval: 1)
        for t in stride(from: 2.5, to: 10, by: 0.5) {
            _ = d.beat("n", session: "s2", load: NodeLoad(), tasks: [:], now: t, interval: 1)
            #expect(d.evaluate(now: t).allSatisfy { $0.to != .down })
        }
        #expect(d.beat("n", session: "s", load: NodeLoad(), tasks: [:], now: 10, interval: 1) == nil, "an old session's heartbeat is refused")
    }

    /// The outage begins right before a beat was due, a whole period after
    /// the last one: a 2.9 s outage is still below the 3 s grace period,
    /// though the node has been silent for 3.8 s when it is heard again.
    @Test func theGraceCountsFromTheMissedBeat() {
        var d = make()
        d.open("n", session: "s", connection: 1, load: NodeLoad(), now: 0, interval: 1)
        _ = d.beat("n", session: "s", load: NodeLoad(), tasks: [:], now: 1, interval: 1)
        // Cut at 1.9, back at 4.8 (the beat due at 2 is late by 2.8 s).
        for t in stride(from: 1.9, through: 4.8, by: 0.1) { #expect(d.evaluate(now: t).allSatisfy { $0.to != .down }, "at \(t)") }
        #expect(d.beat("n", session: "s", load: NodeLoad(), tasks: [:], now: 4.8, interval: 1) == .suspect)
    }

    @Test func knownNodesGetTheGracePeriodAfterARestart() {
        var d = make()
        d.track("n", now: 100)
        #expect(d.status("n") == .unknown)
        #expect(d.evaluate(now: 102).isEmpty)
        #expect(d.evaluate(now: 103.5).map(\.to) == [.down])
        // With the restart allowance a node has twice as long to come back.
        var e = make()
        e.track("m", now: 100, allowance: 3)
        #expect(e.evaluate(now: 105.9).isEmpty)
        #expect(e.evaluate(now: 106.1).map(\.to) == [.down])
    }

    /// A new leader starts every node's grace period at once when the grace
    /// period covers an agent's way to the new leader; a shorter one gets
    /// the difference first.
    @Test func aNewLeaderAddsNothingBeforeAGracePeriodTheAgentsFitIn() {
        #expect(Coordinator.leadershipAllowance(downAfter: 3) == 0)
        #expect(Coordinator.leadershipAllowance(downAfter: Agent.leaderReachBound) == 0)
        #expect(Coordinator.leadershipAllowance(downAfter: 1) == Agent.leaderReachBound - 1)
        var d = make()
        d.track("n", now: 100, allowance: Coordinator.leadershipAllowance(downAfter: d.grace))
        #expect(d.evaluate(now: 100 + d.grace - 0.1).isEmpty)
        #expect(d.evaluate(now: 100 + d.grace + 0.1).map(\.to) == [.down])
    }

    @Test func jitterComesFromTheInjectedSource() {
        let d = make()
        var a = SeededRandom(seed: 9), b = SeededRandom(seed: 9)
        let xs = (0..<50).map { _ in d.nextInterval(using: &a) }
        #expect(xs == (0..<50).map { _ in d.nextInterval(using: &b) })
        #expect(xs.allSatisfy { $0 >= 0.8 && $0 <= 1.2 } && Set(xs).count > 40)
    }
}

@Suite struct AgentPlannerTests {
    func assignment(_ id: String, desired: DesiredState = .running, state: TaskState = .assigned) -> Assignment {
        Assignment(taskID: id, serviceID: "s", name: "web.1", slot: 1, version: 1, spec: ServiceSpec(name: "web", image: "i"), desired: desired, state: state)
    }

    /// A restarted agent finds its containers running: it adopts them and restarts nothing.
    @Test func adoptsWhatRuns() {
        let (actions, statuses) = AgentPlanner.plan(assignments: [assignment("t1", state: .running)],
                                                     observed: [ObservedTask(taskID: "t1", containerID: "c1", status: .running)], busy: [])
        #expect(actions.isEmpty)
        #expect(statuses == [TaskStatus(taskID: "t1", state: .running, containerID: "c1")])
    }

    @Test func startsStopsAndRemoves() {
        let (actions, _) = AgentPlanner.plan(
            assignments: [assignment("new"), assignment("old", desired: .shutdown, state: .running), assignment("half", state: .starting)],
            observed: [ObservedTask(taskID: "old", containerID: "c-old", status: .running),
                       ObservedTask(taskID: "half", containerID: "c-half", status: .created),
                       ObservedTask(taskID: "stray", containerID: "c-stray", status: .running)], busy: [])
        #expect(actions.contains(.start(assignment("new"))))
        #expect(actions.contains(.stop(taskID: "old", containerID: "c-old", timeout: nil)))
        #expect(actions.contains(.startExisting(taskID: "half", containerID: "c-half")))
        #expect(actions.contains(.remove(taskID: "stray", containerID: "c-stray")))
        #expect(actions.count == 4)
        // Busy tasks are left alone.
        #expect(AgentPlanner.plan(assignments: [assignment("new")], observed: [], busy: ["new"]).actions.isEmpty)
    }

    /// A task orphaned while its node was cut off was replaced: back, the node kills it without the stop grace.
    @Test func killsOrphanedTasksAtOnce() {
        var orphaned = assignment("t", desired: .shutdown, state: .orphaned)
        orphaned.spec.stopTimeout = 30
        let observed = [ObservedTask(taskID: "t", containerID: "c", status: .running)]
        #expect(AgentPlanner.plan(assignments: [orphaned], observed: observed, busy: []).actions == [.stop(taskID: "t", containerID: "c", timeout: 0)])
        var stopped = assignment("t", desired: .shutdown, state: .running)
        stopped.spec.stopTimeout = 30
        #expect(AgentPlanner.plan(assignments: [stopped], observed: observed, busy: []).actions == [.stop(taskID: "t", containerID: "c", timeout: 30)])
    }

    @Test func reportsEndings() {
        let a = assignment("t", state: .running)
        #expect(AgentPlanner.status(a, ObservedTask(taskID: "t", containerID: "c", status: .exited, exitCode: 0))?.state == .complete)
        let failed = AgentPlanner.status(a, ObservedTask(taskID: "t", containerID: "c", status: .exited, exitCode: 3, restartCount: 3))
        #expect(failed?.state == .failed && failed?.message == "exit code 3 after 3 restarts")
        #expect(AgentPlanner.status(a, ObservedTask(taskID: "t", containerID: "c", status: .restarting, exitCode: 1))?.state == .running)
        #expect(AgentPlanner.status(a, nil)?.message == "the container is gone")
        #expect(AgentPlanner.status(assignment("t"), nil) == nil, "not started yet")
        let stopped = assignment("t", desired: .shutdown, state: .running)
        #expect(AgentPlanner.status(stopped, ObservedTask(taskID: "t", containerID: "c", status: .exited, exitCode: 137))?.state == .shutdown)
    }

    @Test func keepsOneContainerPerTask() {
        let (actions, _) = AgentPlanner.plan(assignments: [assignment("t", state: .running)],
                                             observed: [ObservedTask(taskID: "t", containerID: "dead", status: .exited),
                                                        ObservedTask(taskID: "t", containerID: "live", status: .running)], busy: [])
        #expect(actions == [.remove(taskID: "t", containerID: "dead")])
        // The same container seen twice (created, then running) is one container: nothing to remove.
        let twice = AgentPlanner.plan(assignments: [assignment("t", state: .running)],
                                      observed: [ObservedTask(taskID: "t", containerID: "c", status: .created),
                                                 ObservedTask(taskID: "t", containerID: "c", status: .running)], busy: [])
        #expect(twice.actions.isEmpty && twice.statuses.map(\.state) == [.running])
    }
}
