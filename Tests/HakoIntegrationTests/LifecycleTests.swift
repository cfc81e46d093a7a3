#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// The local container lifecycle, checked from inside the containers where
/// that is the truth.
@Suite(.needsRoot, .serialized)
final class LifecycleTests {
    let host = TestHost.make("life")

    deinit { host.cleanup() }

    @Test func isolatesHostnameAndPIDs() {
        let r = host.hako("run", "--rm", "--hostname", "boxy", host.busybox, "sh", "-c", "hostname; echo $$; ps -o pid | wc -l")
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.out.split(separator: "\n").map(String.init)
        #expect(lines.first == "boxy")
        #expect(lines.dropFirst().first == "1", "the command is PID 1 in its own namespace")
        // ps header + sh + ps + wc: nothing of the host is visible.
        #expect(Int(lines.last ?? "") ?? 99 <= 5)

        let id = host.hako("run", "-d", host.busybox, "sleep", "30").out
        let name = host.hako("exec", id, "hostname").out
        #expect(name == String(id.prefix(12)), "the default hostname is the short id")
        host.hako("rm", "-f", id)
    }

    @Test func hostNamespacesWhenAsked() {
        let pid = host.hako("run", "--rm", "--pid", "host", host.busybox, "sh", "-c", "echo $$").out
        #expect(pid != "1" && !pid.isEmpty)
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count)
        #expect(host.hako("run", "--rm", "--uts", "host", host.busybox, "hostname").out == cString(buf))
        let none = host.hako("run", "--rm", "--network", "none", host.busybox, "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1").out
        #expect(none.split(separator: "\n").map { $0.trimmed } == ["lo"], "a new network namespace has only lo")
        let shared = host.hako("run", "--rm", "--network", "host", host.busybox, "sh", "-c", "tail -n +3 /proc/net/dev | wc -l").out
        #expect((Int(shared) ?? 0) >= 1)
        // cgroup namespace: private or the host's on request (the defaults: ResourceLimitTests).
        let priv = host.hako("run", "--rm", "--cgroupns", "private", host.busybox, "cat", "/proc/self/cgroup").out
        #expect(priv.split(separator: "\n").allSatisfy { $0.hasSuffix(":/") }, "\(priv)")
        let sharedCg = host.hako("run", "--rm", "--cgroupns", "host", host.busybox, "cat", "/proc/self/cgroup").out
        #expect(sharedCg.contains(host.cgroupParent))
    }

    @Test func rootFilesystemIsPrivate() throws {
        // Writes land in the container's upper layer only.
        let id = host.hako("run", "-d", host.busybox, "sh", "-c", "echo secret > /bin/new-file; mkdir /mnt/t; mount -t tmpfs none /mnt/t; sleep 30").out
        #expect(host.eventually { host.hako("exec", id, "cat", "/bin/new-file").out == "secret" })
        let other = host.hako("run", "--rm", host.busybox, "sh", "-c", "ls /bin/new-file 2>&1; true").out
        #expect(other.contains("No such file"), "another container of the same image does not see it")
        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        // The one host mount naming the container is its network namespace's pin
        // (as `ip netns add` makes), removed when the container stops.
        let visible = mountinfo.split(separator: "\n").filter { $0.contains(id) && !$0.contains("/netns/\(id)") }
        #expect(visible.isEmpty, "the container's mounts are not visible on the host: \(visible)")
        #expect(!mountinfo.contains("/mnt/t"))
        let layers = host.inspect(id)["GraphDriver"] as? [String: Any]
        let data = layers?["Data"] as? [String: String] ?? [:]
        let lower = data["LowerDir"] ?? ""
        #expect(!lower.isEmpty && !FileManager.default.fileExists(atPath: lower + "/bin/new-file"), "the image is untouched")
        #expect(FileManager.default.fileExists(atPath: (data["UpperDir"] ?? "") + "/bin/new-file"))
        host.hako("rm", "-f", id)

        // The built-in host image: the host's own / read-only underneath.
        let marker = "/hako-test-marker-\(getpid())"
        let r = host.hako("run", "--rm", "host", "sh", "-c", "echo x > \(marker) && cat \(marker) && test -e /etc/os-release")
        #expect(r.status == 0 && r.out == "x", "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker), "writes in a host-image container never reach the host")
    }

    @Test func devAndProcAreFresh() {
        let r = host.hako("run", "--rm", host.busybox, "sh", "-c", "ls /dev | tr '\\n' ' '; echo; grep -c . /proc/self/mountinfo; touch /sys/x 2>&1 | head -1")
        #expect(r.status == 0)
        let lines = r.out.split(separator: "\n").map(String.init)
        let devs = Set((lines.first ?? "").split(separator: " ").map(String.init))
        for d in ["null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue"] { #expect(devs.contains(d), "missing /dev/\(d)") }
        #expect(!devs.contains("sda") && !devs.contains("vda") && !devs.contains("mem") && !devs.contains("console"))
        #expect(lines.last?.contains("Read-only") == true, "/sys is read-only")
        let tty = host.hako("run", "--rm", "-t", host.busybox, "sh", "-c", "tty; ls /dev/console")
        #expect(tty.out.contains("/dev/pts/0") && tty.out.contains("/dev/console"))
    }

    @Test func exitCodesFollowDocker() {
        #expect(host.hako("run", "--rm", host.busybox, "true").status == 0)
        #expect(host.hako("run", "--rm", host.busybox, "false").status == 1)
        #expect(host.hako("run", "--rm", host.busybox, "sh", "-c", "exit 42").status == 42)
        #expect(host.hako("run", "--rm", "--pid", "host", host.busybox, "sh", "-c", "kill -9 $$").status == 137, "killed by a signal: 128 + 9")
        let before = host.containerIDs()
        let notFound = host.hako("run", "--rm", host.busybox, "no-such-command")
        #expect(notFound.status == 127)
        #expect(notFound.stderr.contains("no-such-command"))
        #expect(notFound.stderr.split(separator: "\n").count == 1, "one clear line")
        #expect(host.hako("run", host.busybox, "/etc/not-executable").status == 126)
        #expect(host.hako("run", host.busybox, "/no/such/path").status == 127)
        #expect(host.hako("run", "no-such-image:v9", "true").status == 125)
        #expect(host.hako("run", "--restart", "sometimes", host.busybox, "true").status == 125)
        #expect(host.hako("run", "--bogus-flag", host.busybox, "true").status == 125)
        #expect(host.hako("run", "-w", "relative", host.busybox, "true").status == 125)
        #expect(host.hako("run", "-u", "ghost", host.busybox, "true").status == 125)
        #expect(host.hako("run", "--rm", "--restart", "always", host.busybox, "true").status == 125)
        #expect(host.hako("run", host.busybox).status == 125, "the image has no default command")
        // Failed runs leave nothing behind.
        #expect(host.containerIDs() == before)
        #expect(host.cgroupDirs().allSatisfy { $0.split(separator: "/").last?.count != 64 }, "no container cgroup is left")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: host.runRoot + "/containers")) ?? []).isEmpty)
    }

    /// Run from a job with standard input and error closed (cron, a unit with
    /// them closed): hako's own descriptors then take the lowest numbers,
    /// which are the ones the monitor's are placed at.
    @Test func runsWithStandardDescriptorsClosed() {
        let hako = (host.prefix + [Binaries.hako]).joined(separator: " ")
        let r = Subprocess.run(["/bin/sh", "-c", "\(hako) run --rm \(host.busybox) sh -c 'echo out; exit 7' <&- 2>&-"], env: host.env)
        #expect(r.status == 7, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout == "out\n")
    }

    @Test func nameInUseIsRefused() {
        let a = host.hako("create", "--name", "dup", host.busybox, "true")
        #expect(a.status == 0)
        let b = host.hako("create", "--name", "dup", host.busybox, "true")
        #expect(b.status == 125)
        #expect(b.stderr.contains("already in use"))
        #expect(host.hako("create", "--name", "bad name", host.busybox, "true").status == 125)
        host.hako("rm", "dup")
        #expect(host.hako("create", "--name", "dup", host.busybox, "true").status == 0, "a removed name is free again")
        host.hako("rm", "dup")
    }

    @Test func processEnvironment() {
        let envFile = host.base + "/env.list"
        FileManager.default.createFile(atPath: envFile, contents: Data("FROM_FILE=yes\n# comment\nSHARED=file\n".utf8))
        let r = host.hako("run", "--rm", "-e", "A=1", "-e", "SHARED=flag", "--env-file", envFile, "-w", "/tmp/work", "-u", "tester",
                          host.busybox, "sh", "-c", "echo $A $FROM_FILE $SHARED; pwd; id -u; id -g; id -G; echo $HOME")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.out.split(separator: "\n").map(String.init) == ["1 yes flag", "/tmp/work", "1000", "1000", "1000 29", "/home/tester"])
        #expect(host.hako("run", "--rm", "-u", "4321:99", host.busybox, "sh", "-c", "id -u; id -g").out == "4321\n99")
        let ep = host.hako("run", "--rm", "--entrypoint", "echo", host.busybox, "via", "entrypoint")
        #expect(ep.out == "via entrypoint")
        // Every inherited fd above 2 is closed.
        let fds = host.hako("run", "--rm", host.busybox, "sh", "-c", "ls /proc/$$/fd; true")
        #expect(fds.out.split(separator: "\n").sorted() == ["0", "1", "2"], "\(fds.out)")
        #expect(host.hako("run", "--rm", "-i", host.busybox, "cat", stdin: "through stdin\n").out == "through stdin")
        #expect(host.hako("run", "--rm", host.busybox, "cat", stdin: "ignored\n").out == "", "without -i stdin is /dev/null")
        #expect(host.hako("run", "--rm", "-l", "tier=web", host.busybox, "true").status == 0)
    }

    @Test func logs() {
        let id = host.hako("run", "-d", host.busybox, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; printf partial").out
        #expect(host.hako("wait", id).out == "0")
        let all = host.hako("logs", id)
        #expect(all.stdout == "line1\nline2\nline3\nline4\nline5\npartial")
        #expect(all.stderr == "oops\n")
        #expect(host.hako("logs", "--tail", "2", id).stdout == "line5\npartial")
        let stamped = host.hako("logs", "-t", id).stdout.split(separator: "\n")
        #expect(stamped.first.map { Timestamp(rfc3339: String($0.split(separator: " ")[0])) != nil } == true)
        // -f follows until the container ends.
        let slow = host.hako("run", "-d", host.busybox, "sh", "-c", "echo a; sleep 1; echo b").out
        let followed = host.hako("logs", "-f", slow, timeout: 20)
        #expect(followed.stdout == "a\nb\n")
        host.hako("rm", id, slow)
    }

    @Test func execJoinsTheContainer() {
        let id = host.hako("run", "-d", "--hostname", "inside", host.busybox, "sleep", "30").out
        defer { host.hako("rm", "-f", id) }
        let ns = host.hako("exec", id, "sh", "-c", "for n in pid mnt net uts ipc; do [ $(readlink /proc/1/ns/$n) = $(readlink /proc/self/ns/$n) ] || echo differ $n; done; hostname; cat /proc/1/cmdline | tr '\\0' ' '")
        #expect(ns.status == 0, "\(ns.stderr)")
        #expect(ns.out == "inside\nsleep 30")
        let cg = host.hako("exec", id, "sh", "-c", "[ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] && echo same")
        #expect(cg.out == "same")
        #expect(host.hako("exec", id, "sh", "-c", "exit 7").status == 7)
        #expect(host.hako("exec", id, "no-such-command").status == 127)
        #expect(host.hako("exec", id, "/etc/not-executable").status == 126)
        #expect(host.hako("exec", "-u", "tester", "-w", "/tmp", "-e", "X=y", id, "sh", "-c", "id -u; pwd; echo $X").out == "1000\n/tmp\ny")
        #expect(host.hako("exec", "-t", id, "tty").out.hasPrefix("/dev/pts/"))
        #expect(host.hako("exec", "-i", id, "cat", stdin: "piped\n").out == "piped")
        #expect(host.hako("exec", "nope", "true").status == 125)
    }

    @Test func restartPolicies() {
        // no: exits once.
        let no = host.hako("run", "-d", host.busybox, "sh", "-c", "exit 3").out
        #expect(host.hako("wait", no).out == "3")
        #expect(host.inspect(no)["RestartCount"] as? Int == 0)
        // on-failure:2 with a failing command: two restarts, then it stays down.
        let onf = host.hako("run", "-d", "--restart", "on-failure:2", host.busybox, "sh", "-c", "date +%s%N >> /tmp/runs; exit 1").out
        #expect(host.eventually(10) { host.state(onf)["Status"] as? String == "exited" })
        #expect(host.inspect(onf)["RestartCount"] as? Int == 2)
        #expect(host.state(onf)["ExitCode"] as? Int == 1)
        // on-failure does not restart a success.
        let ok = host.hako("run", "-d", "--restart", "on-failure", host.busybox, "true").out
        #expect(host.eventually(5) { host.state(ok)["Status"] as? String == "exited" })
        #expect(host.inspect(ok)["RestartCount"] as? Int == 0)
        // always: restarts even after success; the first restart comes quickly; stop ends it.
        let always = host.hako("run", "-d", "--restart", "always", host.busybox, "sh", "-c", "date +%s%N >> /tmp/runs; sleep 0.2").out
        #expect(host.eventually(10) { (host.inspect(always)["RestartCount"] as? Int ?? 0) >= 3 })
        let stop = host.hako("stop", always)
        #expect(stop.status == 0)
        #expect(host.state(always)["Status"] as? String == "exited")
        let count = host.inspect(always)["RestartCount"] as? Int ?? 0
        usleep(800_000)
        #expect(host.inspect(always)["RestartCount"] as? Int == count, "a stopped container is not restarted")
        // unless-stopped behaves as always while the monitor lives.
        let us = host.hako("run", "-d", "--restart", "unless-stopped", host.busybox, "true").out
        #expect(host.eventually(10) { (host.inspect(us)["RestartCount"] as? Int ?? 0) >= 2 })
        host.hako("rm", "-f", us)
        // Time from exit to restart: the first restart within 300 ms (from the log's own timestamps).
        let timed = host.hako("run", "-d", "--restart", "on-failure:1", host.busybox, "sh", "-c", "echo start; sleep 0.3; echo end; exit 1").out
        #expect(host.eventually(10) { host.state(timed)["Status"] as? String == "exited" })
        let stamps = host.hako("logs", "-t", timed).out.split(separator: "\n").map { $0.split(separator: " ") }
        #expect(stamps.map { $0.count > 1 ? String($0[1]) : "" } == ["start", "end", "start", "end"])
        if stamps.count == 4, let end = Timestamp(rfc3339: String(stamps[1][0])), let again = Timestamp(rfc3339: String(stamps[2][0])) {
            #expect(again.secondsSince1970 - end.secondsSince1970 < 0.3, "first restart within 300 ms of the exit")
        }
        host.hako("rm", "-f", no, onf, ok, always, timed)
    }

    @Test func stopEscalatesToKill() {
        let id = host.hako("run", "-d", host.busybox, "sh", "-c", "trap '' TERM; while true; do sleep 1; done").out
        let t0 = monotonicSeconds()
        #expect(host.hako("stop", "-t", "1", id).status == 0)
        let took = monotonicSeconds() - t0
        #expect(took >= 0.9 && took < 6, "stop waited \(took) s")
        #expect(host.state(id)["ExitCode"] as? Int == 137)
        // A container that honours SIGTERM stops at once with 143.
        let polite = host.hako("run", "-d", host.busybox, "sh", "-c", "trap 'exit 143' TERM; while true; do sleep 0.1; done").out
        usleep(200_000)
        let t1 = monotonicSeconds()
        host.hako("stop", "-t", "10", polite)
        #expect(monotonicSeconds() - t1 < 5)
        #expect(host.state(polite)["ExitCode"] as? Int == 143)
        host.hako("rm", id, polite)
    }

    @Test func removeLeavesNoTrace() {
        let id = host.hako("run", "-d", "--name", "gone", host.busybox, "sleep", "30").out
        #expect(host.hako("rm", id).status == 125, "a running container needs --force")
        #expect(host.hako("rm", "-f", "gone").status == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(host.root)/containers/\(id)"))
        #expect(!FileManager.default.fileExists(atPath: "\(host.runRoot)/containers/\(id)"))
        #expect(!FileManager.default.fileExists(atPath: "\(host.root)/names/gone"))
        #expect(host.cgroupDirs().allSatisfy { !$0.hasSuffix(id) })
        #expect(host.hako("inspect", id).status != 0)
        // --rm removes by itself, also when detached.
        let auto = host.hako("run", "-d", "--rm", host.busybox, "true").out
        #expect(host.eventually(5) { !FileManager.default.fileExists(atPath: "\(host.root)/containers/\(auto)") })
        // A --rm container's name is free when its run returns (the monitor
        // moves the name's link into the directory it deletes after telling
        // the client); its files and cgroups go right after.
        for i in 0..<3 {
            let r = host.hako("run", "--rm", "--name", "reused", host.busybox, "true")
            #expect(r.status == 0, "run \(i): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(host.root)/names/reused"), "run \(i): the name is released")
        }
        let containers = host.root + "/containers"
        #expect(host.eventually(5) {
            ((try? FileManager.default.contentsOfDirectory(atPath: containers)) ?? []).isEmpty
                && host.cgroupDirs().allSatisfy { $0.split(separator: "/").last?.count != 64 }
        }, "no directory, link or cgroup of the removed containers is left")
    }

    @Test func manyContainersAtOnce() {
        // Twenty CLIs at once, each its own process.
        let pids = (0..<20).map { i in
            Subprocess.spawn(host.prefix + [Binaries.hako, "run", "-d", host.busybox, "sleep", "30"], env: host.env,
                             stdout: "\(host.base)/many.\(i).out", stderr: "\(host.base)/many.\(i).err")
        }
        let results = pids.enumerated().map { i, pid in
            Output(status: Subprocess.waitBounded(pid, timeout: 90),
                   stdout: (try? String(contentsOfFile: "\(host.base)/many.\(i).out", encoding: .utf8)) ?? "",
                   stderr: (try? String(contentsOfFile: "\(host.base)/many.\(i).err", encoding: .utf8)) ?? "")
        }
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.filter { $0.status != 0 }.map(\.stderr))")
        let ids = Set(results.map(\.out))
        #expect(ids.count == 20)
        let running = Set(host.hako("ps", "-q", "--no-trunc").out.split(separator: "\n").map(String.init))
        #expect(ids.isSubset(of: running))
        host.hako(["rm", "-f"] + Array(ids), timeout: 120)
        #expect(host.hako("ps", "-aq").out.isEmpty)
    }

    @Test func killingTheCLIKeepsTheContainer() {
        let pid = Subprocess.spawn(host.prefix + [Binaries.hako, "run", "--name", "orphan", host.busybox, "sh", "-c", "echo up; sleep 30"], env: host.env)
        #expect(host.eventually { host.hako("logs", "orphan").out == "up" })
        kill(pid, SIGKILL)
        _ = Subprocess.waitBounded(pid, timeout: 5)
        usleep(200_000)
        #expect(host.state("orphan")["Status"] as? String == "running")
        #expect(host.hako("exec", "orphan", "true").status == 0)
        host.hako("rm", "-f", "orphan")
    }

    /// The CLI killed at points along a start (cgroups made, limits and device
    /// filter written, the monitor being launched): whatever it leaves is a
    /// container that `rm -f` removes whole, cgroups included.
    @Test func killingTheCLIMidStartLeavesOnlyWhatRmRemoves() {
        let before = Set(host.containerIDs())
        for delay: UInt32 in [2_000, 8_000, 20_000, 50_000, 120_000] {
            let pid = Subprocess.spawn(host.prefix + [Binaries.hako, "run", "-d", "--network", "none", "-m", "32m", "--pids-limit", "20",
                                                      host.busybox, "sleep", "30"], env: host.env)
            usleep(delay)
            kill(pid, SIGKILL)
            _ = Subprocess.waitBounded(pid, timeout: 5)
        }
        for id in Set(host.containerIDs()).subtracting(before) { host.hako("rm", "-f", id, timeout: 30) }
        #expect(Set(host.containerIDs()) == before)
        let mine = { self.host.cgroupDirs().filter { $0.split(separator: "/").last?.count == 64 && !before.contains(String($0.split(separator: "/").last ?? "")) } }
        #expect(host.eventually(15) { mine().isEmpty }, "cgroups left: \(mine())")
    }

    @Test func killingTheMonitorIsDetected() throws {
        let id = host.hako("run", "-d", host.busybox, "sleep", "30").out
        let lock = "\(host.runRoot)/containers/\(id)/monitor.lock"
        let monitor = try #require(Int32((try? String(contentsOfFile: lock, encoding: .utf8))?.trimmed ?? ""))
        let containerPid = host.state(id)["Pid"] as? Int ?? 0
        kill(monitor, SIGKILL)
        #expect(host.eventually { host.state(id)["Status"] as? String == "exited" })
        #expect((host.state(id)["Error"] as? String ?? "").contains("monitor"))
        #expect(host.eventually { kill(Int32(containerPid), 0) != 0 }, "the container died with its monitor")
        #expect(host.cgroupDirs().allSatisfy { !$0.hasSuffix(id) }, "its cgroups were removed")
        #expect(host.hako("start", id).status == 0, "it can be started again")
        #expect(host.hako("rm", "-f", id).status == 0)
    }

    @Test func pauseFreezes() {
        let id = host.hako("run", "-d", host.busybox, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.05; done").out
        defer { host.hako("rm", "-f", id) }
        #expect(host.hako("pause", id).status == 0)
        #expect(host.state(id)["Status"] as? String == "paused")
        #expect(host.hako("exec", id, "true").status == 125, "no exec into a paused container")
        let upper = ((host.inspect(id)["GraphDriver"] as? [String: Any])?["Data"] as? [String: String])?["UpperDir"] ?? ""
        let a = try? String(contentsOfFile: upper + "/tmp/tick", encoding: .utf8)
        usleep(300_000)
        let b = try? String(contentsOfFile: upper + "/tmp/tick", encoding: .utf8)
        #expect(a == b, "a frozen container makes no progress")
        #expect(host.hako("pause", id).status == 125)
        #expect(host.hako("unpause", id).status == 0)
        usleep(300_000)
        #expect((try? String(contentsOfFile: upper + "/tmp/tick", encoding: .utf8)) != b)
        #expect(host.hako("unpause", id).status == 125)
    }

    @Test func killSignals() {
        let id = host.hako("run", "-d", host.busybox, "sh", "-c", "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done").out
        usleep(200_000)
        #expect(host.hako("kill", "-s", "USR1", id).status == 0)
        #expect(host.eventually { host.hako("logs", id).out.contains("got-usr1") })
        #expect(host.state(id)["Running"] as? Bool == true)
        #expect(host.hako("kill", "-s", "NOPE", id).status == 125)
        #expect(host.hako("kill", id).status == 0)
        #expect(host.state(id)["ExitCode"] as? Int == 137)
        #expect(host.hako("kill", id).status == 125, "not running any more")
        host.hako("rm", id)
    }

    @Test func psAndInspect() throws {
        let id = host.hako("create", "--name", "listed", "-l", "a=b", host.busybox, "echo", "hi").out
        let all = host.hako("ps", "-a", "--format", "json").out.split(separator: "\n")
        let row = try #require(all.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.first { $0["Names"] as? String == "listed" })
        #expect(row["State"] as? String == "created")
        #expect(row["ID"] as? String == String(id.prefix(12)))
        #expect(!host.hako("ps", "-q").out.contains(String(id.prefix(12))), "ps without -a lists running ones only")
        #expect(host.hako("start", "-a", "listed").out == "hi")
        let i = host.inspect(String(id.prefix(8)))
        #expect(i["Id"] as? String == id, "a unique id prefix is accepted")
        #expect(i["Name"] as? String == "/listed")
        #expect(host.state("listed")["Status"] as? String == "exited")
        host.hako("rm", id)
    }

    @Test func logsRotateAtTheSizeCap() throws {
        // ~30 KiB of output with a 4 KiB cap and 2 files: the oldest lines are gone, the newest stay.
        let id = host.hako("run", "-d", "--log-opt", "max-size=4k", "--log-opt", "max-file=2", host.busybox,
                           "sh", "-c", "i=0; while [ $i -lt 600 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done").out
        #expect(host.hako("wait", id).out == "0")
        let dir = "\(host.root)/containers/\(id)"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("container.log") }.sorted()
        #expect(files == ["container.log", "container.log.1"])
        for f in files {
            let size = (try FileManager.default.attributesOfItem(atPath: "\(dir)/\(f)")[.size] as? Int) ?? 0
            #expect(size <= 4096 + 200, "\(f) is \(size) bytes")
        }
        let lines = host.hako("logs", id).out.split(separator: "\n")
        #expect(lines.last == "line-599-padding-padding-padding")
        #expect(!lines.contains("line-0-padding-padding-padding"))
        #expect(host.hako("run", "--log-opt", "max-size=tiny", host.busybox, "true").status == 125)
        host.hako("rm", id)
    }

    @Test func restartCommandStartsAgain() {
        let id = host.hako("run", "-d", host.busybox, "sh", "-c", "echo started; sleep 30").out
        let firstPid = host.state(id)["Pid"] as? Int
        #expect(host.hako("restart", "-t", "0", id).status == 0)
        #expect(host.state(id)["Status"] as? String == "running")
        #expect(host.state(id)["Pid"] as? Int != firstPid)
        #expect(host.eventually { host.hako("logs", id).out == "started\nstarted" })
        host.hako("rm", "-f", id)
    }

    @Test func signalsToTheForegroundCLIReachTheContainer() {
        let out = host.base + "/sigproxy.out"
        let pid = Subprocess.spawn(host.prefix + [Binaries.hako, "run", "--rm", "--name", "proxied", host.busybox, "sh", "-c",
                                    "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done"],
                                   env: host.env, stdout: out)
        #expect(host.eventually { ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("ready") })
        kill(pid, SIGTERM)
        #expect(Subprocess.waitBounded(pid, timeout: 10) == 7, "the CLI exits with the container's code")
        #expect(((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("got-term"))
    }
}
