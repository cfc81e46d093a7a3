#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Rolling updates on the harness: a bad update pauses or rolls back, the
/// two orders keep the running count within their bounds (docs/cluster.md),
/// and `service logs` reads, filters and follows the tasks' output.
@Suite(.needsRoot, .serialized)
final class ClusterRolloutTests {
    let h = ClusterHarness("ro", nodes: 3)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    func inspect(_ service: String) -> [String: Any] {
        let r = h.cluster("service", "inspect", service)
        return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    func updateState(_ service: String) -> String { (inspect(service)["UpdateStatus"] as? [String: Any])?["State"] as? String ?? "" }

    /// Live tasks that run: (slot, version, health).
    func live(_ service: String) -> [(slot: Int, version: Int, health: String)] {
        h.tasks(service).filter { $0["state"] as? String == "running" }.map {
            ($0["slot"] as? Int ?? 0, $0["version"] as? Int ?? 0, $0["health"] as? String ?? "")
        }
    }

    /// The default failure action pauses after the first task; `service
    /// rollback` brings the old version back; `--update-failure-action
    /// rollback` does it by itself, and the old version ends at full count.
    @Test func aFailingUpdatePausesOrRollsBack() {
        let r = h.cluster(["service", "create", "--no-resolve-image", "--name", "ro", "--replicas", "3",
                           "--health-cmd", "test -f /tmp/ok", "--health-interval", "500ms", "--health-retries", "2",
                           "--restart-delay", "1s", "--stop-timeout", "1", "--wait", "--timeout", "60s",
                           "busybox:test", "sh", "-c", "touch /tmp/ok; exec sleep 1000"], timeout: 90)
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { h.failed = true; return }
        #expect(h.eventually(20) { self.live("ro").count == 3 && self.live("ro").allSatisfy { $0.health == "healthy" } }, "\(h.tasks("ro"))")

        // A check that always fails: the first slot's new task turns unhealthy, the update pauses.
        #expect(h.cluster("service", "update", "--health-cmd", "false", "ro").status == 0)
        let paused = h.eventually(40) { self.updateState("ro") == "paused" }
        let status = inspect("ro")["UpdateStatus"] as? [String: Any]
        #expect(paused, "\(String(describing: status)) \(h.tasks("ro", all: true))")
        #expect((status?["Message"] as? String)?.hasPrefix("update paused due to failure or early termination of task") == true)
        // Only slot 1 ever got the new version; the other two run the old one, healthy, and stay so.
        usleep(2_000_000)
        let all = h.tasks("ro", all: true)
        #expect(all.filter { $0["version"] as? Int == 2 }.allSatisfy { $0["slot"] as? Int == 1 }, "\(all)")
        #expect(live("ro").filter { $0.version == 1 && $0.health == "healthy" }.map(\.slot).sorted() == [2, 3], "\(all)")
        let waited = h.cluster("service", "update", "--wait", "--timeout", "10s", "--health-retries", "2", "ro")
        #expect(waited.status != 0 && waited.stderr.contains("paused"), "--wait says the update paused: \(waited.stderr)")

        // `service rollback`: the old spec again, slot 1 refilled, the others kept.
        #expect(h.cluster("service", "rollback", "ro").status == 0)
        #expect(h.eventually(40) {
            self.updateState("ro") == "rollback_completed" && self.live("ro").count == 3 && self.live("ro").allSatisfy { $0.health == "healthy" }
        }, "\(inspect("ro")) \(h.tasks("ro", all: true))")

        // With the rollback failure action, the update undoes itself.
        #expect(h.cluster("service", "update", "--health-cmd", "false", "--update-failure-action", "rollback", "ro").status == 0)
        var states = Set<String>()
        let back = h.eventually(60) {
            let s = self.updateState("ro")
            states.insert(s)
            return s == "rollback_completed" && self.live("ro").count == 3 && self.live("ro").allSatisfy { $0.health == "healthy" }
        }
        #expect(back, "\(states) \(inspect("ro")) \(h.tasks("ro", all: true))")
        let spec = inspect("ro")["spec"] as? [String: Any]
        let test = (spec?["healthCheck"] as? [String: Any]).map { "\($0)" } ?? ""
        #expect(test.contains("test -f /tmp/ok"), "the old check is back: \(test)")
        #expect(h.eventually(15) { self.h.runningCount("ro").reduce(0, +) == 3 }, "ground truth: \(h.runningCount("ro"))")
        if !back || !paused { h.failed = true }
        h.cluster("service", "rm", "ro")
    }

    /// stop-first keeps [replicas − parallelism, replicas] tasks running,
    /// start-first [replicas, replicas + parallelism], observed through
    /// `service ps` for the whole update; then `service logs`.
    @Test func bothOrdersKeepTheCountWithinBoundsAndLogsFollow() {
        let loop = "i=0; while true; do i=$((i+1)); echo \"tick $V $i\"; sleep 0.3; done"
        let r = h.cluster(["service", "create", "--no-resolve-image", "--name", "ord", "--replicas", "3", "-e", "V=1",
                           "--update-monitor", "1s", "--stop-timeout", "1", "--wait", "--timeout", "60s",
                           "busybox:test", "sh", "-c", loop], timeout: 90)
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { h.failed = true; return }

        func roll(_ flags: [String], bounds: ClosedRange<Int>) -> [Int] {
            let u = h.cluster(["service", "update"] + flags + ["ord"])
            #expect(u.status == 0, "\(u.stderr)")
            var counts: [Int] = []
            let done = h.eventually(90) {
                counts.append(self.h.tasks("ord").filter { $0["state"] as? String == "running" }.count)
                return self.updateState("ord") == "completed" && self.live("ord").count == 3
            }
            #expect(done, "\(inspect("ord")) \(h.tasks("ord", all: true))")
            #expect(counts.allSatisfy { bounds.contains($0) }, "running counts \(counts) outside \(bounds)")
            if !done { h.failed = true }
            return counts
        }
        let stopFirst = roll(["-e", "V=2"], bounds: 2...3)
        // Stop-first: in every slot the new task was created after the old one had ended.
        let history = h.tasks("ord", all: true)
        for slot in 1...3 {
            let mine = history.filter { $0["slot"] as? Int == slot }
            let ended = mine.first { $0["version"] as? Int == 1 }?["updated"] as? Double ?? .infinity
            let created = mine.first { $0["version"] as? Int == 2 }?["created"] as? Double ?? 0
            #expect(created >= ended, "slot \(slot): \(mine)")
        }
        let startFirst = roll(["-e", "V=3", "--update-order", "start-first", "--update-parallelism", "2"], bounds: 3...5)
        #expect(startFirst.contains { $0 > 3 }, "new tasks beside the old: \(startFirst)")
        print("cluster rollout: running counts stop-first \(stopFirst.min() ?? 0)…\(stopFirst.max() ?? 0) (bounds 2…3), start-first \(startFirst.min() ?? 0)…\(startFirst.max() ?? 0) (bounds 3…5)")

        // Logs: every task's lines with its name and node; one task's; a window; timestamps.
        let logs = h.cluster("service", "logs", "ord")
        #expect(logs.status == 0 && logs.out.contains("tick 3"), "\(logs.stderr)")
        let prefixes = Set(logs.out.split(separator: "\n").compactMap { $0.split(separator: "|").first.map { String($0).trimmingCharacters(in: .whitespaces) } })
        #expect(prefixes.allSatisfy { $0.hasPrefix("ord.") && $0.contains("@node") }, "\(prefixes)")
        let one = h.cluster("service", "logs", "ord.2")
        #expect(one.status == 0 && !one.out.isEmpty, "\(one.stderr)")
        #expect(one.out.split(separator: "\n").allSatisfy { $0.hasPrefix("ord.2.") }, "\(one.out)")
        #expect(h.cluster("service", "logs", "ord.9").status != 0, "no such task")
        let recent = h.cluster("service", "logs", "--since", "2s", "ord.2")
        let recentLines = recent.out.split(separator: "\n").filter { $0.contains("tick 3") }.count
        #expect(recent.status == 0 && recentLines > 0 && recentLines < one.out.split(separator: "\n").count, "\(recent.out)")
        let old = h.cluster("service", "logs", "--until", "1s", "--since", "1h", "ord.2")
        #expect(old.status == 0, "\(old.stderr)")
        let stamped = h.cluster("service", "logs", "--timestamps", "--tail", "2", "ord.2")
        let stampedLines = stamped.out.split(separator: "\n")
        #expect(stampedLines.count >= 2 && stampedLines.allSatisfy { ($0.split(separator: "|").last ?? "").dropFirst().prefix(4).allSatisfy(\.isNumber) },
                "\(stamped.out)")

        // --follow streams new lines until --until passes (bounded), each once.
        let until = String(Int(Date().timeIntervalSince1970) + 4)
        let started = monotonicSeconds()
        let follow = h.cluster(["service", "logs", "-f", "--tail", "1", "--until", until, "ord.1"], timeout: 20)
        let took = monotonicSeconds() - started
        // The slot's earlier tasks (kept for their logs) give their last line too; the running one's count up.
        let ticks = follow.out.split(separator: "\n").filter { $0.contains("| tick 3 ") }.compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }
        #expect(follow.status == 0 && took < 10, "\(took) s: \(follow.stderr)")
        #expect(ticks.count >= 5 && ticks == ticks.sorted() && Set(ticks).count == ticks.count, "new lines, in order, once each: \(ticks)")
        h.cluster("service", "rm", "ord")
    }
}
