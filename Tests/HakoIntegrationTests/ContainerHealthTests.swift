#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoRuntime
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
        // Each probe notes its PID, then becomes `sleep 7` (the shell execs it).
        let id = try runDetached(["--health-cmd", "echo $$ >>/tmp/probes; exec sleep 7", "--health-timeout", "300ms",
                                  "--health-interval", "2s", "--health-retries", "1", host.busybox, "sleep", "600"])
        #expect(host.eventually(10) { status(id) == "unhealthy" }, "\(health(id))")
        let entry = try #require(log(id).first)
        #expect(entry["ExitCode"] as? Int == -1)
        #expect((entry["Output"] as? String)?.contains("Health check exceeded timeout") == true, "\(entry)")
        // The timed-out probe is gone from the container. A later one may be running by now (a slow
        // VM's polling can take longer than the interval), so the first probe is told by its PID.
        let probes = host.hako("exec", id, "cat", "/tmp/probes")
        let first = try #require(probes.stdout.split(separator: "\n").first.flatMap { Int($0) }, "\(probes.stdout)")
        let ps = host.hako("exec", id, "ps", "-o", "pid,args")
        let running = ps.stdout.split(separator: "\n").compactMap { line in
            line.split(separator: " ", omittingEmptySubsequences: true).first.flatMap { Int($0) }
        }
        #expect(ps.status == 0 && running.contains(1) && !running.contains(first), "probe \(first): \(ps.stdout)")
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

    @Test func aContainerAtItsPidsLimitIsProbedAsDockersIs() throws {
        // Docker's runtime forks an exec'd process outside the container and then moves it into the
        // container's cgroups (the kernel limits forks, not moves): at the pids limit the probe still
        // starts, and only a fork of its own fails, which is then a failed probe like any other (its
        // exit code and the shell's message as its output). The probe helper cannot fork there; the
        // monitor then starts the probe that way.
        let full = ["--pids-limit", "2", host.busybox, "sh", "-c", "sleep 600 & exec sleep 600"]
        let plain = try runDetached(["--health-cmd", "true", "--health-interval", "200ms"] + full)
        let forking = try runDetached(["--health-cmd", "sleep 0; true", "--health-interval", "200ms", "--health-retries", "2"] + full)
        // Both containers are at their limit: a process that forks inside fails (seen from inside, by an exec).
        let inside = host.hako("exec", plain, "sh", "-c", "sleep 0; true")
        #expect(inside.status != 0 && inside.stderr.contains("can't fork"), "\(inside.status) \(inside.stderr)")
        #expect(host.eventually(10) { status(plain) == "healthy" && log(plain).count >= 2 }, "\(health(plain))")
        #expect(host.eventually(10) { status(forking) == "unhealthy" }, "\(health(forking))")
        let failed = try #require(log(forking).last)
        #expect((failed["ExitCode"] as? Int ?? 0) > 0 && (failed["Output"] as? String)?.contains("can't fork") == true, "\(failed)")
        #expect(host.hako("ps", "-q", "--filter", "health=unhealthy").out == String(forking.prefix(12)))
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

    func monitorPid(_ id: String) -> Int32 {
        Int32(((try? String(contentsOfFile: "\(host.runRoot)/containers/\(id)/monitor.lock", encoding: .utf8)) ?? "").trimmed) ?? 0
    }
    func children(_ pid: Int32) -> [Int32] {
        ((try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? "").split(separator: " ").compactMap { Int32($0) }
    }
    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
    func link(_ path: String) -> String { (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "" }

    @Test func aProbeIsBornInTheContainersCgroupsAndTopLeavesTheHelperOut() throws {
        let id = try runDetached(["--health-cmd", "sleep 30", "--health-interval", "100ms", "--health-timeout", "60s",
                                  host.busybox, "sleep", "600"])
        let initPid = Int32(host.state(id)["Pid"] as? Int ?? 0)
        let monitor = monitorPid(id)
        try #require(initPid > 0 && monitor > 0)
        // The probe and the monitor's probe helper are the monitor's children besides the init.
        var probe: Int32 = 0, helper: Int32 = 0
        #expect(host.eventually(10) {
            for c in children(monitor) where c != initPid {
                if read("/proc/\(c)/cmdline").split(separator: "\0").joined(separator: " ").hasSuffix("sleep 30") { probe = c }
                if read("/proc/\(c)/comm").trimmed == "hako-probe" { helper = c }
            }
            return probe > 0 && helper > 0
        }, "the monitor's children: \(children(monitor))")
        try #require(probe > 0 && helper > 0)
        // In every hierarchy, the probe's cgroup is the container's (cgroup files, not the probe's word).
        let cgroups = read("/proc/\(initPid)/cgroup")
        #expect(cgroups.contains(id), "\(cgroups)")
        #expect(read("/proc/\(probe)/cgroup") == cgroups)
        #expect(read("/proc/\(helper)/cgroup") == cgroups, "the helper sits in the container's cgroups so that its probes are born there")
        // Inside the container's pid namespace the probe is; the helper is not.
        #expect(link("/proc/\(probe)/ns/pid") == link("/proc/\(initPid)/ns/pid"))
        #expect(link("/proc/\(helper)/ns/pid") != link("/proc/\(initPid)/ns/pid"))
        let procs = host.cgroupDirs().flatMap { dir in
            read("\(dir)/\(id)/cgroup.procs").split(separator: "\n").compactMap { Int32($0) }
        }
        #expect(procs.contains(probe) && procs.contains(helper), "\(procs)")
        // `top` shows the probe (a process of the container, as Docker's are), never the helper.
        let top = host.hako("top", id)
        let pids = top.stdout.split(separator: "\n").dropFirst().compactMap { $0.split(separator: " ").dropFirst().first.flatMap { Int32($0) } }
        #expect(top.status == 0 && top.stdout.contains("sleep 30") && pids.contains(initPid) && !pids.contains(helper), "\(top.stdout)")
        // Stopped, the container leaves no helper and no cgroup behind.
        #expect(host.hako("stop", "-t", "1", id).status == 0)
        #expect(host.eventually(5) { kill(helper, 0) != 0 })
        #expect(host.eventually(5) { host.cgroupDirs().allSatisfy { !FileManager.default.fileExists(atPath: "\($0)/\(id)") } })
    }

    @Test func theLiveStateIsWrittenInPlaceAndNeverSeenTorn() throws {
        // Every millisecond a probe whose output is 0 to 2999 bytes: writes of many lengths, as fast as they come.
        let id = try runDetached(["--health-cmd", #"head -c $((RANDOM % 3000)) /dev/zero | tr '\0' x"#, "--health-interval", "1ms",
                                  host.busybox, "sleep", "600"])
        let dir = "\(host.root)/containers/\(id)"
        #expect(host.eventually(10) { status(id) == "healthy" && log(id).count == 5 }, "\(health(id))")
        func inode(_ path: String) -> UInt64 {
            var st = stat()
            return stat(path, &st) == 0 ? UInt64(st.st_ino) : 0
        }
        let fileInode = inode(dir + "/health"), stateInode = inode(dir + "/state.json")
        var bodies = Set<String>(), reads = 0, torn = 0
        let deadline = monotonicSeconds() + 3
        while monotonicSeconds() < deadline {
            // What a reader sees: whole, or refused (and read again by MonitorHealthFile.read).
            if let raw = try? FS.readFile(dir + "/health"), MonitorHealthFile.body(of: raw) == nil { torn += 1 }
            let body = try #require(MonitorHealthFile.read(dir + "/health"), "a reader always gets a whole state")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
            let entries = json["log"] as? [[String: Any]] ?? []
            #expect(json["status"] as? String == "healthy" && entries.count == 5
                    && entries.allSatisfy { ($0["output"] as? String ?? "").allSatisfy { $0 == "x" } }, "\(json)")
            bodies.insert(String(decoding: Array(body), as: UTF8.self))
            reads += 1
        }
        #expect(bodies.count > 20, "\(bodies.count) states in \(reads) reads: the probes kept writing")
        // One file, rewritten in place; the state file untouched while the status stays the same.
        #expect(inode(dir + "/health") == fileInode && fileInode != 0)
        #expect(inode(dir + "/state.json") == stateInode && stateInode != 0)
        // inspect shows the live results, not the state file's (written at the change to healthy).
        let ends = log(id).compactMap { $0["End"] as? String }
        let stateFile = try JSONSerialization.jsonObject(with: Data(try FS.readFile(dir + "/state.json"))) as? [String: Any]
        let recorded = ((stateFile?["health"] as? [String: Any])?["log"] as? [[String: Any]] ?? []).compactMap { $0["end"] as? String }
        #expect(ends.count == 5 && (ends.last ?? "") > (recorded.last ?? "~"), "inspect \(ends), state.json \(recorded)")
        print("health file: \(reads) reads, \(torn) raced a write, \(bodies.count) distinct states")
    }
}
