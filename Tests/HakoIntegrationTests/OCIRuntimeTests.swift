#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// hako-runtime as runc's command line: the state machine, hooks, the console
/// socket, exec, kill --all, pause/resume, update, ps — checked from the
/// container and the host.
@Suite(.needsRoot, .serialized) final class OCIRuntimeTests {
    let host = RuntimeHost("oci")

    func file(_ bundle: String, _ path: String) -> String? {
        (try? String(contentsOfFile: bundle + "/rootfs" + path, encoding: .utf8))?.trimmed
    }

    @Test func lifecycleFollowsTheStateMachine() {
        let b = host.bundle("life", args: ["sh", "-c", "touch /started; exec sleep 60"])
        #expect(host.rt("create", "--bundle", b, "--pid-file", host.base + "/life.pid", "life").status == 0)
        let s = host.state("life")
        #expect(s["status"] as? String == "created")
        let pid = s["pid"] as? Int ?? 0
        #expect(pid > 0 && (try? String(contentsOfFile: host.base + "/life.pid", encoding: .utf8)) == "\(pid)")
        #expect(file(b, "/started") == nil, "the program must not run before start")
        #expect(host.rt("delete", "life").status != 0, "a created container is not stopped")
        #expect(host.status("life") == "created", "a refused delete changes nothing")

        #expect(host.rt("start", "life").status == 0)
        #expect(host.eventually { self.file(b, "/started") != nil })
        #expect(host.status("life") == "running")
        #expect(host.rt("start", "life").status != 0, "start only from created")
        // The init is the same process: create prepared it, start let it exec.
        #expect(host.state("life")["pid"] as? Int == pid)
        #expect(host.cgroupDirs().contains { $0.hasSuffix("/life") })

        #expect(host.rt("kill", "life", "KILL").status == 0)
        #expect(host.eventually { self.host.status("life") == "stopped" })
        #expect(host.state("life")["pid"] as? Int == 0)
        #expect(host.rt("kill", "life", "KILL").status != 0, "kill only created or running")
        #expect(host.rt("delete", "life").status == 0)
        #expect(host.rt("state", "life").status != 0)
        #expect(!host.cgroupDirs().contains { $0.hasSuffix("/life") })
    }

    @Test func runReturnsTheExitStatusAndCleansUp() {
        let b = host.bundle("runexit", args: ["sh", "-c", "hostname > /seen; exit 7"]) { c in c["hostname"] = "box7" }
        let r = host.rt("run", "--bundle", b, "runexit")
        #expect(r.status == 7)
        #expect(file(b, "/seen") == "box7")
        #expect(host.rt("state", "runexit").status != 0)
        #expect(!host.cgroupDirs().contains { $0.hasSuffix("/runexit") })
    }

    @Test func aFailedCreateLeavesNothingBehind() {
        let missing = host.bundle("nobin", args: ["/no/such/program"])
        let r = host.rt("create", "--bundle", missing, "nobin")
        #expect(r.status != 0 && r.stderr.contains("executable file not found"))
        let badMount = host.bundle("badmount", args: ["true"]) { c in
            var m = c["mounts"] as? [[String: Any]] ?? []
            m.append(["destination": "/x", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]])
            c["mounts"] = m
        }
        let r2 = host.rt("create", "--bundle", badMount, "badmount")
        #expect(r2.status != 0 && r2.stderr.contains("mounts[7].source"), "\(r2.stderr)")
        let unsupported = host.bundle("rdt", args: ["true"]) { c in
            var l = c["linux"] as? [String: Any] ?? [:]
            l["intelRdt"] = ["closID": "x"]
            c["linux"] = l
        }
        #expect(host.rt("create", "--bundle", unsupported, "rdt").stderr.contains("linux.intelRdt"))
        for id in ["nobin", "badmount", "rdt"] {
            #expect(!FileManager.default.fileExists(atPath: host.root + "/" + id))
            #expect(!host.cgroupDirs().contains { $0.hasSuffix("/" + id) })
        }
    }

    @Test func hooksRunWhereTheSpecSaysWithTheState() {
        let log = host.base + "/hooks.log"
        func hook(_ name: String, _ path: String = "/bin/sh", out: String? = nil) -> [String: Any] {
            ["path": path, "args": ["sh", "-c", "cat > \(out ?? "/dev/null"); echo \(name) >> \(log)"]]
        }
        let b = host.bundle("hooks", args: ["sh", "-c", "echo program >> /inside"]) { c in
            c["hooks"] = [
                "prestart": [hook("prestart", out: host.base + "/prestart.json")],
                "createRuntime": [hook("createRuntime")],
                "createContainer": [hook("createContainer")],
                // Runs inside the container: its path and its writes are the container's.
                "startContainer": [["path": "/bin/sh", "args": ["sh", "-c", "cat > /start.json; echo startContainer >> /inside"]]],
                "poststart": [hook("poststart")],
                "poststop": [hook("poststop", out: host.base + "/poststop.json")],
            ]
        }
        #expect(host.rt("create", "--bundle", b, "hooks").status == 0)
        #expect((try? String(contentsOfFile: log, encoding: .utf8)) == "prestart\ncreateRuntime\ncreateContainer\n")
        #expect(host.rt("start", "hooks").status == 0)
        #expect(host.eventually { self.file(b, "/inside") == "startContainer\nprogram" })
        #expect((try? String(contentsOfFile: log, encoding: .utf8))?.hasSuffix("poststart\n") == true)
        let prestart = (try? String(contentsOfFile: host.base + "/prestart.json", encoding: .utf8)) ?? ""
        #expect(prestart.contains("\"id\":\"hooks\"") && prestart.contains("\"status\":\"created\""), "\(prestart)")
        #expect(file(b, "/start.json")?.contains("\"bundle\":\"\(b)\"") == true)
        #expect(host.eventually { self.host.status("hooks") == "stopped" })
        #expect(host.rt("delete", "hooks").status == 0)
        #expect((try? String(contentsOfFile: host.base + "/poststop.json", encoding: .utf8))?.contains("\"status\":\"stopped\"") == true)
    }

    @Test func aFailingOrSlowHookFailsCreateAndLeavesNothing() {
        let failing = host.bundle("hookfail", args: ["true"]) { c in
            c["hooks"] = ["createRuntime": [["path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]]]]
        }
        let r = host.rt("create", "--bundle", failing, "hookfail")
        #expect(r.status != 0 && r.stderr.contains("exited with status 3") && r.stderr.contains("broken"), "status \(r.status): \(r.stderr)")
        let slow = host.bundle("hookslow", args: ["true"]) { c in
            c["hooks"] = ["createContainer": [["path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1]]]
        }
        let t0 = monotonicSeconds()
        let r2 = host.rt("create", "--bundle", slow, "hookslow")
        #expect(r2.status != 0 && r2.stderr.contains("timed out"), "\(r2.stderr)")
        #expect(monotonicSeconds() - t0 < 10)
        for id in ["hookfail", "hookslow"] {
            #expect(!FileManager.default.fileExists(atPath: host.root + "/" + id))
            #expect(!host.cgroupDirs().contains { $0.hasSuffix("/" + id) })
        }
    }

    /// The runtime spec: a failing poststart or poststop hook is a warning; the
    /// remaining hooks still run and the lifecycle goes on.
    @Test func aFailingPoststartOrPoststopHookLetsTheOthersRun() {
        let log = host.base + "/posthooks.log"
        func hook(_ name: String, exit code: Int) -> [String: Any] {
            ["path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/null; echo \(name) >> \(log); exit \(code)"]]
        }
        let b = host.bundle("posthooks", args: ["sleep", "30"]) { c in
            c["hooks"] = [
                "poststart": [hook("poststart-0", exit: 4), hook("poststart-1", exit: 0), hook("poststart-2", exit: 5)],
                "poststop": [hook("poststop-0", exit: 6), hook("poststop-1", exit: 0)],
            ]
        }
        #expect(host.rt("create", "--bundle", b, "posthooks").status == 0)
        let started = host.rt("start", "posthooks")
        #expect(started.status == 0, "a failing poststart hook does not fail start: \(started.stderr)")
        #expect(started.stderr.contains("poststart[0]") && started.stderr.contains("poststart[2]"), "each failure is warned: \(started.stderr)")
        #expect(host.status("posthooks") == "running")
        #expect(host.rt("kill", "posthooks", "KILL").status == 0)
        #expect(host.eventually { self.host.status("posthooks") == "stopped" })
        let deleted = host.rt("delete", "posthooks")
        #expect(deleted.status == 0 && deleted.stderr.contains("poststop[0]"), "\(deleted.stderr)")
        #expect(host.rt("state", "posthooks").status != 0, "the container is gone despite the failing hook")
        #expect((try? String(contentsOfFile: log, encoding: .utf8)) == "poststart-0\npoststart-1\npoststart-2\npoststop-0\npoststop-1\n")
    }

    /// process.apparmorProfile: applied where the kernel has AppArmor (the
    /// program runs confined), refused by name where it has not.
    @Test func anAppArmorProfileIsAppliedOrClearlyRefused() {
        let enabled = (try? String(contentsOfFile: "/sys/module/apparmor/parameters/enabled", encoding: .utf8))?.hasPrefix("Y") == true
        func bundle(_ name: String, _ profile: String) -> String {
            host.bundle(name, args: ["sh", "-c", "cat /proc/self/attr/current 2>/dev/null; true"]) { c in
                var p = c["process"] as? [String: Any] ?? [:]
                p["apparmorProfile"] = profile
                c["process"] = p
            }
        }
        let unconfined = host.rt("run", "--bundle", bundle("aa-unconfined", "unconfined"), "aa-unconfined")
        #expect(unconfined.status == 0, "\(unconfined.stderr)")
        let profile = "hako-test-\(getpid())"
        if !enabled {
            let r = host.rt("run", "--bundle", bundle("aa-refused", profile), "aa-refused")
            #expect(r.status != 0 && r.stderr.contains("process.apparmorProfile") && r.stderr.contains("not enabled"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: host.root + "/aa-refused"))
            #expect(!host.cgroupDirs().contains { $0.hasSuffix("/aa-refused") })
            return
        }
        let parser = ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let parser else {
            // A profile that is not loaded cannot be entered: the start fails at the AppArmor stage.
            let r = host.rt("run", "--bundle", bundle("aa-missing", profile), "aa-missing")
            #expect(r.status != 0 && r.stderr.contains("apparmor"), "\(r.stderr)")
            return
        }
        let text = "profile \(profile) flags=(attach_disconnected) { file, capability, signal, }\n"
        #expect(Subprocess.run([parser, "-r"], stdin: text).status == 0)
        defer { Subprocess.run([parser, "-R"], stdin: text) }
        let r = host.rt("run", "--bundle", bundle("aa-applied", profile), "aa-applied")
        #expect(r.status == 0 && r.stdout.contains(profile), "the program runs under the profile: \(r.stdout) \(r.stderr)")
    }

    @Test func theConsoleSocketReceivesTheTerminal() throws {
        let path = host.base + "/console.sock"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0 && listen(listener, 4) == 0)
        let b = host.bundle("tty", args: ["sh", "-c", "tty; echo hello-from-tty"]) { c in
            var p = c["process"] as? [String: Any] ?? [:]
            p["terminal"] = true
            c["process"] = p
        }
        #expect(host.rt("create", "--bundle", b, "--console-socket", path, "tty").status == 0)
        let conn = accept(listener, nil, nil)
        #expect(conn >= 0)
        let master = hako_recv_fd(conn)
        close(conn)
        #expect(master >= 0)
        #expect(host.rt("start", "tty").status == 0)
        var out = ""
        let deadline = monotonicSeconds() + 10
        while !out.contains("hello-from-tty") && monotonicSeconds() < deadline {
            var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 200) > 0 {
                var buf = [UInt8](repeating: 0, count: 512)
                let n = read(master, &buf, buf.count)
                if n <= 0 { break }
                out += String(decoding: buf[0..<n], as: UTF8.self)
            }
        }
        close(master)
        #expect(out.contains("/dev/pts/") && out.contains("hello-from-tty"), "\(out)")
        _ = host.eventually { self.host.status("tty") == "stopped" }
        #expect(host.rt("delete", "--force", "tty").status == 0)
    }

    @Test func execJoinsTheRunningContainer() {
        let b = host.bundle("exec", args: ["sleep", "60"]) { c in c["hostname"] = "exec-box" }
        #expect(host.rt("run", "--detach", "--bundle", b, "exec").status == 0)
        let h = host.rt("exec", "exec", "hostname")
        #expect(h.status == 0 && h.out == "exec-box")
        #expect(host.rt("exec", "exec", "sh", "-c", "exit 3").status == 3)
        #expect(host.rt("exec", "--env", "GREETING=hi", "--cwd", "/tmp", "exec", "sh", "-c", "echo $GREETING $(pwd)").out == "hi /tmp")
        let nf = host.rt("exec", "exec", "/no/such/binary")
        #expect(nf.status != 0 && nf.stderr.contains("executable file not found"))
        // --process: the whole process as a file, as containerd and conmon pass it.
        let proc = host.base + "/process.json"
        host.write(["args": ["sh", "-c", "id -u > /tmp/exec-uid; echo $X > /tmp/exec-env"], "env": ["X=from-process", "PATH=/bin"], "cwd": "/",
                    "user": ["uid": 1000, "gid": 1000]], to: proc)
        let pidFile = host.base + "/exec.pid"
        #expect(host.rt("exec", "--process", proc, "--detach", "--pid-file", pidFile, "exec").status == 0)
        #expect(host.eventually { self.file(b, "/tmp/exec-env") == "from-process" })
        #expect(file(b, "/tmp/exec-uid") == "1000")
        #expect(FileManager.default.fileExists(atPath: pidFile))
        #expect(host.rt("kill", "exec", "KILL").status == 0)
        #expect(host.eventually { self.host.status("exec") == "stopped" })
        #expect(host.rt("exec", "exec", "true").status != 0, "no exec into a stopped container")
        #expect(host.rt("delete", "exec").status == 0)
    }

    @Test func killAllPauseResumeUpdateAndPs() throws {
        let b = host.bundle("ctl", args: ["sh", "-c", "sleep 60 & sleep 60 & wait"])
        #expect(host.rt("run", "-d", "--bundle", b, "ctl").status == 0)
        var pids: [Int] = []
        #expect(host.eventually {
            pids = (try? JSONSerialization.jsonObject(with: Data(self.host.rt("ps", "--format", "json", "ctl").stdout.utf8)) as? [Int]) ?? []
            return pids.count == 3
        })
        #expect(pids.contains(host.state("ctl")["pid"] as? Int ?? -1))
        #expect(host.rt("ps", "ctl").stdout.contains("sleep 60"))
        #expect(host.rt("pause", "ctl").status == 0)
        #expect(host.status("ctl") == "paused")
        #expect(host.rt("resume", "ctl").status == 0)
        #expect(host.status("ctl") == "running")
        #expect(host.rt("resume", "ctl").status != 0, "resume only a paused container")
        let res = host.base + "/res.json"
        host.write(["pids": ["limit": 42]], to: res)
        #expect(host.rt("update", "--resources", res, "ctl").status == 0)
        let pidsMax = host.cgroupDirs().first { TestHost.cgroupV2 || $0.contains("/pids/") }.flatMap { try? String(contentsOfFile: $0 + "/pids.max", encoding: .utf8) }
        #expect(pidsMax?.trimmed == "42")
        #expect(host.rt("update", "--resources", "-", "ctl", stdin: #"{"memory":{"limit":67108864}}"#).status == 0)
        let list = host.rt("list", "--format", "json")
        #expect(list.stdout.contains("\"id\":\"ctl\""))
        #expect(host.rt("list", "-q").out.split(separator: "\n").contains("ctl"))
        #expect(host.rt("kill", "--all", "ctl", "KILL").status == 0)
        #expect(host.eventually { self.host.status("ctl") == "stopped" })
        for p in pids {
            // Gone, or a zombie waiting for the host's init to reap it.
            #expect(host.eventually { (try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8)).map { $0.contains(") Z ") } ?? true },
                    "pid \(p) survived kill --all")
        }
        #expect(host.rt("delete", "ctl").status == 0)
    }

    @Test func featuresVersionAndJSONLog() throws {
        let f = host.rt("features")
        let json = try JSONSerialization.jsonObject(with: Data(f.stdout.utf8)) as? [String: Any]
        #expect((json?["hooks"] as? [String])?.contains("createContainer") == true)
        let v = host.rt("--version")
        #expect(v.stdout.hasPrefix("hako-runtime version ") && v.stdout.contains("\nspec: 1."))
        let logFile = host.base + "/runtime.log"
        let r = Subprocess.run([Binaries.runtime, "--root", host.root, "--log", logFile, "--log-format=json", "state", "nonexistent"])
        #expect(r.status != 0 && r.stderr.contains("does not exist"))
        let last = (try? String(contentsOfFile: logFile, encoding: .utf8))?.split(separator: "\n").last.map(String.init) ?? ""
        let entry = try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: String]
        #expect(entry?["level"] == "error" && entry?["msg"]?.contains("does not exist") == true && entry?["time"] != nil)
    }
}
