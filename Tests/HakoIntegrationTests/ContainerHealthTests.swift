#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Health checks run by each container's monitor: Docker's schedule, retries,
/// start period and timeout, seen through `ps`, `inspect`, `events` and from
/// inside the container.
@Suite(.needsRoot)
final class ContainerHealthTests {
    let host = TestHost.make("health")
    deinit { host.cleanup() }

    func health(_ ref: String) -> [String: Any] { host.state(ref)["Health"] as? [String: Any] ?? [:] }
    func status(_ ref: String) -> String { health(ref)["Status"] as? String ?? "" }
    func log(_ ref: String) -> [[String: Any]] { health(ref)["Log"] as? [[String: Any]] ?? [] }

    func runDetached(_ args: [String]) throws -> String {
        let r = host.hako(["run", "-d", "--network", "none"] + args)
        try #require(r.status == 0, "\(r.stderr)")
        return r.out
    }

    @Test func aFailingCheckTurnsUnhealthyAfterRetries() throws {
        let id = try runDetached(["--name", "hc-retries", "--health-cmd", "hostname; test -f /tmp/ok", "--health-interval", "300ms",
                                  "--health-retries", "3", host.busybox, "sh", "-c", "touch /tmp/ok; exec sleep 600"])
        #expect(host.eventually(10) { status(id) == "healthy" }, "\(health(id))")
        // The probe ran in the container: its UTS namespace (the host name is the short id) and its files.
        let first = try #require(log(id).last)
        #expect(first["ExitCode"] as? Int == 0)
        #expect((first["Output"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines) == String(id.prefix(12)), "\(first)")
        #expect(host.hako("ps", "--filter", "health=fine").status == 125, "health is starting, healthy, unhealthy or none")
        #expect(host.hako("ps", "-q", "--filter", "name=hc-retries", "--filter", "health=healthy").out == String(id.prefix(12)),
                "health= is one more key of ps's filter table")
        let up = host.hako("ps")
        #expect(up.stdout.contains("(healthy)"), "\(up.stdout)")
        #expect(host.hako("ps", "-q", "--filter", "health=healthy").out == String(id.prefix(12)))
        #expect(host.hako("ps", "-q", "--filter", "health=unhealthy").out.isEmpty)

        #expect(host.hako("exec", id, "rm", "/tmp/ok").status == 0)
        var seen: [String: Any] = [:]
        var observed: [(status: String, streak: Int)] = []
        #expect(host.eventually(15) {
            seen = health(id)
            observed.append((seen["Status"] as? String ?? "", seen["FailingStreak"] as? Int ?? -1))
            return observed.last?.status == "unhealthy"
        })
        // Status and streak are written together: unhealthy exactly from the `retries`-th failure on,
        // whatever the polling's pace (a slow VM may see a later probe's streak).
        #expect(observed.allSatisfy { ($0.status == "unhealthy") == ($0.streak >= 3) }, "\(observed)")
        #expect((seen["FailingStreak"] as? Int ?? 0) >= 3, "\(seen)")
        let entries = seen["Log"] as? [[String: Any]] ?? []
        #expect(entries.count <= 5 && entries.suffix(3).allSatisfy { $0["ExitCode"] as? Int == 1 }, "\(entries)")
        #expect(host.hako("ps").stdout.contains("(unhealthy)"))
        #expect(host.hako("ps", "-q", "--filter", "health=unhealthy").out == String(id.prefix(12)))

        // Healthy again as soon as one probe passes.
        #expect(host.hako("exec", id, "touch", "/tmp/ok").status == 0)
        #expect(host.eventually(10) { status(id) == "healthy" && health(id)["FailingStreak"] as? Int == 0 })
        let events = host.hako("events", "--since", "5m", "--until", "0s", "--filter", "event=health_status", "--filter", "container=\(id)")
        let lines = events.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 3 && lines[0].contains("health_status: healthy") && lines[1].contains("health_status: unhealthy")
                && lines[2].contains("health_status: healthy") && lines[0].contains("name=hc-retries"), "\(events.stdout)")
    }

    @Test func failuresInTheStartPeriodDoNotCount() throws {
        let id = try runDetached(["--health-cmd", "false", "--health-interval", "200ms", "--health-retries", "1",
                                  "--health-start-period", "5s", "--health-start-interval", "200ms", host.busybox, "sleep", "600"])
        // Probes fail every 200 ms from the start, but for 5 s the container stays "starting".
        #expect(host.eventually(2) { log(id).count >= 3 }, "\(health(id))")
        let during = health(id)
        #expect(during["Status"] as? String == "starting" && during["FailingStreak"] as? Int == 0, "\(during)")
        #expect(host.hako("ps").stdout.contains("(health: starting)"))
        #expect(host.hako("ps", "-q", "--filter", "health=starting").out == String(id.prefix(12)))
        #expect(host.eventually(15) { status(id) == "unhealthy" }, "\(health(id))")
    }

    @Test func aProbePastItsTimeoutIsKilledAndCounted() throws {
        let id = try runDetached(["--health-cmd", "sleep 7", "--health-timeout", "300ms", "--health-interval", "2s",
                                  "--health-retries", "1", host.busybox, "sleep", "600"])
        #expect(host.eventually(10) { status(id) == "unhealthy" }, "\(health(id))")
        let entry = try #require(log(id).first)
        #expect(entry["ExitCode"] as? Int == -1)
        #expect((entry["Output"] as? String)?.contains("Health check exceeded timeout") == true, "\(entry)")
        // The next probe is 2 s away: no probe is left running in the container.
        let ps = host.hako("exec", id, "ps", "-o", "args")
        #expect(ps.status == 0 && !ps.stdout.contains("sleep 7"), "\(ps.stdout)")
    }

    @Test func theImagesHealthcheckAppliesAndNoHealthcheckDisablesIt() throws {
        let base = try runDetached([host.busybox, "sleep", "600"])
        let commit = host.hako("commit", "-c", #"HEALTHCHECK --interval=200ms --retries=2 CMD ["test", "-d", "/proc/1"]"#, base, "hc-image:1")
        try #require(commit.status == 0, "\(commit.stderr)")
        let id = try runDetached(["hc-image:1", "sleep", "600"])
        let config = host.inspect(id)["Config"] as? [String: Any] ?? [:]
        let check = config["Healthcheck"] as? [String: Any] ?? [:]
        #expect(check["Test"] as? [String] == ["CMD", "test", "-d", "/proc/1"] && check["Interval"] as? Int == 200_000_000, "\(config)")
        #expect(host.eventually(10) { status(id) == "healthy" }, "\(health(id))")

        let off = try runDetached(["--no-healthcheck", "hc-image:1", "sleep", "600"])
        usleep(600_000)
        #expect(host.state(off)["Health"] == nil)
        #expect(host.hako("ps", "-q", "--filter", "health=none").stdout.contains(String(off.prefix(12))))
        let conflict = host.hako("run", "-d", "--no-healthcheck", "--health-cmd", "true", host.busybox, "true")
        #expect(conflict.status == 125 && conflict.stderr.contains("conflicts"), "\(conflict.stderr)")
        let badDuration = host.hako("create", "--health-interval", "5", host.busybox, "true")
        #expect(badDuration.status == 125 && badDuration.stderr.contains("--health-interval"), "\(badDuration.stderr)")
        let noTest = host.hako("create", "--health-retries", "2", host.busybox, "true")
        #expect(noTest.status == 125 && noTest.stderr.contains("need a test"), "\(noTest.stderr)")
    }

    @Test func aProbeThatCannotStartIsReportedAndAnExitMidProbeDoesNotHang() throws {
        let base = try runDetached([host.busybox, "sleep", "600"])
        try #require(host.hako("commit", "-c", #"HEALTHCHECK --interval=200ms --retries=2 CMD ["/no/such/probe"]"#, base, "hc-broken:1").status == 0)
        let id = try runDetached(["hc-broken:1", "sleep", "600"])
        #expect(host.eventually(10) { status(id) == "unhealthy" }, "\(health(id))")
        let entry = try #require(log(id).last)
        #expect(entry["ExitCode"] as? Int == -1 && (entry["Output"] as? String)?.contains("cannot start the health check") == true, "\(entry)")
        // The container ends while its probe runs: the monitor settles the exit at once.
        let short = try runDetached(["--health-cmd", "sleep 30", "--health-interval", "100ms", host.busybox, "sleep", "1"])
        let wait = host.hako(["wait", short], timeout: 15)
        #expect(wait.status == 0 && wait.out == "0", "\(wait.stderr)")
        #expect(host.hako("rm", short).status == 0)
    }

    @Test func healthOutlivesTheCommandThatStartedIt() throws {
        let out = host.base + "/fg.out"
        let cli = Subprocess.spawn(host.prefix + [Binaries.hako, "run", "--name", "hc-fg", "--network", "none", "--health-cmd", "true",
                                                  "--health-interval", "200ms", host.busybox, "sleep", "600"], env: host.env, stdout: out)
        #expect(host.eventually(10) { status("hc-fg") == "starting" || status("hc-fg") == "healthy" })
        kill(cli, SIGKILL)
        _ = Subprocess.waitBounded(cli, timeout: 10)
        #expect(host.eventually(10) { status("hc-fg") == "healthy" })
        let before = log("hc-fg").last?["End"] as? String ?? ""
        #expect(host.eventually(5) { (log("hc-fg").last?["End"] as? String ?? "") > before }, "the monitor keeps probing")
    }
}
