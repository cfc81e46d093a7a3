#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Short interruptions of one node's underlay, below the 3 s grace period:
/// the link taken down and up again (a cable re-seated, a switch port
/// flapping) and the node's frames dropped on the underlay bridge (link up,
/// packets lost). Neither may declare the node down or move its task.
@Suite(.needsRoot, .serialized)
final class ClusterBlipTests {
    let h = ClusterHarness("bl", nodes: 3)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    enum Interruption: String { case linkDown = "link down", drop = "frames dropped" }

    /// Node `i`'s underlay interrupted for `seconds`: its link down, or its
    /// frames dropped on the underlay bridge (both directions, to the
    /// coordinator and to the other nodes), then restored.
    func interrupt(_ i: Int, _ kind: Interruption, for seconds: Double) {
        switch kind {
        case .linkDown:
            h.link(i, up: false)
            usleep(UInt32(seconds * 1_000_000))
            h.link(i, up: true)
        case .drop:
            let port = "ul\(i + 1)"
            let table = "hkblip"
            h.sh(h.inUnderlay(["/usr/sbin/nft", "table bridge \(table) { "
                + "chain tonode { type filter hook input priority 0; iifname \"\(port)\" drop; }; "
                + "chain through { type filter hook forward priority 0; iifname \"\(port)\" drop; oifname \"\(port)\" drop; }; "
                + "chain fromhost { type filter hook output priority 0; oifname \"\(port)\" drop; }; }"]))
            usleep(UInt32(seconds * 1_000_000))
            h.sh(h.inUnderlay(["/usr/sbin/nft", "delete", "table", "bridge", table]))
        }
    }

    /// Both kinds at 1.0, 1.5 and 2.0 s, each twice: the node is never down,
    /// its container is the same one, no task is replaced.
    @Test func blipsBelowTheGracePeriodMoveNothing() {
        let r = h.cluster(["service", "create", "--no-resolve-image", "--name", "steady", "--replicas", "3", "--stop-timeout", "1",
                           "--wait", "--timeout", "60s", "busybox:test", "sleep", "3600"])
        #expect(r.status == 0, "\(r.stderr)")
        let before = h.running("steady")
        #expect(before.map(\.count) == [1, 1, 1], "one replica per node")
        let tasksBefore = Set(h.tasks("steady", all: true).compactMap { $0["id"] as? String })
        let victim = 1
        var cuts: [(kind: Interruption, seconds: Double, at: Double)] = []
        for kind in [Interruption.linkDown, .drop] {
            for seconds in [1.0, 1.5, 2.0] {
                for _ in 0..<2 {
                    let at = Date().timeIntervalSince1970
                    interrupt(victim, kind, for: seconds)
                    cuts.append((kind, seconds, at))
                    // Back in session before the next cut.
                    #expect(h.eventually(10) { self.h.json("node", "ls").first { $0["name"] as? String == "node2" }?["status"] as? String == "ready" })
                    usleep(700_000)
                }
            }
        }
        // What the coordinator saw of node2, per interruption (seconds after the cut).
        let events = h.json("events").filter { $0["kind"] as? String == "node" && $0["name"] as? String == "node2" }
        var downs = 0, noticed = 0
        for (n, cut) in cuts.enumerated() {
            let end = n + 1 < cuts.count ? cuts[n + 1].at : Double.infinity
            let seen = events.compactMap { e -> (String, Double)? in
                guard let t = e["time"] as? Double, t >= cut.at, t < end, let a = e["action"] as? String else { return nil }
                return (a, t - cut.at)
            }
            downs += seen.filter { $0.0 == "down" }.count
            // The interruption was felt: a suspect node (no new tasks), then ready again.
            if seen.contains(where: { $0.0 == "suspect" }) && seen.last?.0 == "ready" { noticed += 1 }
            print("cluster blip: \(cut.kind.rawValue) \(cut.seconds) s: \(seen.map { "\($0.0) +\(String(format: "%.2f", $0.1))" }.joined(separator: ", "))")
        }
        #expect(events.count >= cuts.count, "the coordinator's events name node2: \(events.count)")
        #expect(noticed == cuts.count, "every interruption made the node suspect and then ready: \(noticed) of \(cuts.count)")
        #expect(downs == 0, "a blip below the grace period declared the node down \(downs) times")
        #expect(h.running("steady") == before, "the same containers on every node")
        #expect(Set(h.tasks("steady", all: true).compactMap { $0["id"] as? String }) == tasksBefore, "no task was replaced")
        h.cluster("service", "rm", "steady")
        #expect(h.eventually(30) { self.h.runningCount("steady").reduce(0, +) == 0 })
    }
}
