#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// `hako events`: what the engine did, replayed with --since/--until, and
/// streamed to a follower, including a container that ends on its own.
@Suite(.needsRoot, .serialized)
final class EventsTests {
    let host = TestHost.make("events")
    deinit { host.cleanup() }

    func actions(_ json: String, id: String) -> [String] {
        json.split(separator: "\n").compactMap { line -> String? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["id"] as? String == id else { return nil }
            return o["action"] as? String
        }
    }

    @Test func replayAndFilters() throws {
        let created = host.hako("create", "--name", "ev1", "--network", "none", host.busybox, "sleep", "600")
        try #require(created.status == 0, "\(created.stderr)")
        let id = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(host.hako("start", "ev1").status == 0)
        #expect(host.hako("pause", "ev1").status == 0 && host.hako("unpause", "ev1").status == 0)
        #expect(host.hako("stop", "-t", "1", "ev1").status == 0)
        #expect(host.hako("rm", "ev1").status == 0)
        let r = host.hako("events", "--since", "5m", "--until", "0s", "--format", "json")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(actions(r.stdout, id: id) == ["create", "start", "pause", "unpause", "die", "stop", "destroy"], "\(r.stdout)")
        #expect(r.stdout.contains("\"name\":\"ev1\"") && r.stdout.contains("\"image\":\"busybox:test\""))
        let die = host.hako("events", "--since", "5m", "--until", "0s", "--filter", "event=die", "--filter", "container=ev1")
        #expect(die.stdout.split(separator: "\n").count == 1 && die.stdout.contains(" container die \(id) ("), "\(die.stdout)")
        #expect(host.hako("events", "--since", "5m", "--until", "0s", "--filter", "container=nothing").stdout.isEmpty)
        let bad = host.hako("events", "--since", "yesterday-ish", "--until", "0s")
        #expect(bad.status == 125 && bad.stderr.contains("invalid --since"))
    }

    @Test func aFollowerSeesAContainerEndOnItsOwn() throws {
        let out = host.base + "/events.out"
        let follower = Subprocess.spawn([Binaries.hako, "events", "--format", "json"], env: host.env, stdout: out)
        defer { kill(follower, SIGTERM); _ = Subprocess.waitBounded(follower, timeout: 10) }
        usleep(500_000)
        let run = host.hako("run", "-d", "--name", "ev2", "--network", "none", host.busybox, "sh", "-c", "sleep 0.3; exit 3")
        try #require(run.status == 0, "\(run.stderr)")
        let id = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var seen: [String] = []
        _ = host.eventually(10) {
            seen = actions((try? String(contentsOfFile: out, encoding: .utf8)) ?? "", id: id)
            return seen.contains("die")
        }
        #expect(seen == ["create", "start", "die"], "\(seen)")
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        #expect(text.contains("\"exitCode\":\"3\""), "\(text)")
        #expect(host.hako("rm", "ev2").status == 0)
    }
}
