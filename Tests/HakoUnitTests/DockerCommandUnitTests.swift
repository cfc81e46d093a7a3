#if canImport(Glibc)
import Glibc
#endif
@testable import HakoEngine
@testable import HakoRuntime
import HakoSystem
import Testing

/// The pure parts behind issue 18's commands: detach keys, /proc parsing for
/// top, label matches, the restart policy frame, log windows.
@Suite struct DockerCommandUnitTests {
    @Test func detachKeysParseAsDocker() throws {
        #expect(try DetachKeys.parse("ctrl-p,ctrl-q") == [0x10, 0x11])
        #expect(try DetachKeys.parse("ctrl-a,d") == [0x01, UInt8(ascii: "d")])
        #expect(try DetachKeys.parse("ctrl-@,ctrl-[") == [0x00, 0x1b])
        #expect(throws: HakoError.self) { try DetachKeys.parse("ctrl-") }
        #expect(throws: HakoError.self) { try DetachKeys.parse("alt-x") }
    }

    @Test func detachSequenceIsHeldBackUntilDecided() {
        var m = AttachSession.DetachMatcher(keys: [0x10, 0x11])
        #expect(m.feed(Array("ab".utf8)) == (Array("ab".utf8), false))
        #expect(m.feed([0x10]) == ([], false), "the first key waits")
        #expect(m.feed(Array("x".utf8)) == ([0x10] + Array("x".utf8), false), "a broken sequence is passed on")
        #expect(m.feed([0x10]).detached == false)
        #expect(m.feed([0x11]) == ([], true))
        var none = AttachSession.DetachMatcher(keys: [])
        #expect(none.feed([0x10, 0x11]) == ([0x10, 0x11], false))
    }

    @Test func procfsOfAProcess() throws {
        let stat = "4242 (sleep (x)) S 1 4242 4242 34816 4242 4194560 100 0 0 0 150 50 0 0 20 0 1 0 2000 4300800 250 18446744073709551615"
        let status = "Name:\tsleep\nUid:\t1000\t1000\t1000\t1000\nGid:\t29\t29\t29\t29\n"
        let p = try #require(ContainerProcess.parse(stat: stat, status: status, cmdline: Array("sleep\u{0}60\u{0}".utf8),
                                                    bootTime: 1_000_000, ticks: 100, pageSize: 4096))
        #expect(p.pid == 4242 && p.ppid == 1 && p.uid == 1000 && p.gid == 29)
        #expect(p.command == "sleep (x)" && p.args == ["sleep", "60"])
        #expect(p.state == "S" && p.tty == "pts/0" && p.cpuSeconds == 2 && p.threads == 1)
        #expect(p.started.seconds == 1_000_020 && p.rssKiB == 1000 && p.vszKiB == 4200)
        #expect(ContainerProcess.parse(stat: "garbage", status: "", cmdline: [], bootTime: 0, ticks: 100, pageSize: 4096) == nil)
        #expect(ContainerProcess.tty(0) == "?" && ContainerProcess.tty(1025) == "tty1")
    }

    /// A sleeping session leader with a terminal, and a multi-threaded zombie-free worker.
    static func processes() throws -> [ContainerProcess] {
        let leader = "7 (sh) S 1 7 7 34816 7 4194560 100 0 3 0 150 50 0 0 20 0 1 0 2000 4300800 250 18446744073709551615 4096 12288 0 0 0 0 0 0 0 0 0 0 17 1 0 0"
        let worker = "9 (nginx) R 7 9 7 0 -1 4194368 5 0 0 0 10 0 0 0 30 10 4 0 3000 8388608 512 18446744073709551615 4096 8192 0 0 0 0 0 0 0 0 0 0 17 0 0 0"
        var a = try #require(ContainerProcess.parse(stat: leader, status: "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
                                                    cmdline: Array("sh\u{0}-c\u{0}x\u{0}".utf8), bootTime: 1_000_000, ticks: 100, pageSize: 4096))
        a.user = "root"
        var b = try #require(ContainerProcess.parse(stat: worker, status: "Uid:\t33\t101\t101\t101\nGid:\t101\t101\t101\t101\n",
                                                    cmdline: Array("nginx: worker\u{0}".utf8), bootTime: 1_000_000, ticks: 100, pageSize: 4096))
        b.user = "nginx"
        b.group = "nginx"
        return [a, b]
    }

    @Test func psOptionsGiveProcpsColumns() throws {
        let ps = try DockerCommandUnitTests.processes()
        func table(_ o: String...) throws -> [[String]] { try PsFormat.parse(o).table(ps, now: 1_000_100, memoryKiB: 10_000) }
        // docker top's default, -ef, and the same letters apart.
        let ef = try table()
        #expect(ef[0] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"])
        #expect(ef[1][0] == "root" && ef[1][1] == "7" && ef[1][5] == "pts/0" && ef[1][6] == "00:00:02" && ef[1][7] == "sh -c x")
        #expect(try table("-ef") == ef && table("-e", "-f") == ef && table("-f") == ef)
        // aux: the BSD user format, STAT with its modifiers (s session leader, + foreground; N nice, l threads).
        let aux = try table("aux")
        #expect(aux[0] == ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"])
        #expect(aux[1][7] == "Ss+" && aux[2][7] == "RNl", "\(aux)")
        #expect(aux[1][3] == "10.0" && aux[1][4] == "4200" && aux[1][5] == "1000", "RSS 1000 KiB of 10000: \(aux)")
        #expect(try table("-aux") == aux)
        // -o and -eo, commas or spaces, header renames (the rest of the list after "=").
        #expect(try table("-eo", "pid,comm,args") == [["PID", "COMMAND", "COMMAND"], ["7", "sh", "sh -c x"], ["9", "nginx", "nginx: worker"]])
        #expect(try table("-opid,user") == table("-o", "pid user"))
        #expect(try table("-o", "pid,comm=NAME,X").first == ["PID", "NAME,X"])
        #expect(try table("-o", "uid,ruid,euser,ruser,group,gid")[2] == ["101", "33", "nginx", "33", "nginx", "101"])
        #expect(try table("-o", "pgid,sid,tpgid,ni,pri,nlwp,psr")[2] == ["9", "7", "-1", "10", "9", "4", "0"])
        // The other built-in formats.
        #expect(try table("-e")[0] == ["PID", "TTY", "TIME", "CMD"])
        #expect(try table("ax")[0] == ["PID", "TTY", "STAT", "TIME", "COMMAND"])
        #expect(try table("-l")[0] == ["F", "S", "UID", "PID", "PPID", "C", "PRI", "NI", "ADDR", "SZ", "WCHAN", "TTY", "TIME", "CMD"])
        #expect(try table("-l")[1][6] == "80" && table("-ly")[0].first == "S")
        #expect(try table("-ej")[0] == ["PID", "PGID", "SID", "TTY", "TIME", "CMD"])
        #expect(try table("-F")[0] == ["UID", "PID", "PPID", "C", "SZ", "RSS", "PSR", "STIME", "TTY", "TIME", "CMD"])
        #expect(try table("axj")[0] == ["PPID", "PID", "PGID", "SID", "TTY", "TPGID", "STAT", "UID", "TIME", "COMMAND"])
        #expect(try table("v")[0] == ["PID", "TTY", "STAT", "TIME", "MAJFL", "TRS", "DRS", "RSS", "%MEM", "COMMAND"])
        #expect(try table("v")[1][5] == "8" && table("v")[1][6] == "4192", "text 4096..12288: 8 KiB; DRS the rest of VSZ")
        #expect(try table("l")[0].contains("WCHAN"))
        #expect(try table("aux", "--no-headers").count == 2 && table("auxh").count == 2)
        #expect(try table("axr").count == 2, "r: running ones alone")
        // Refusals name the option.
        for bad in [["-o", "bogus"], ["-p", "1"], ["-o"], ["--sort=pid"], ["-Q"], ["aQ"]] {
            #expect(throws: PsError.self, "\(bad)") { try PsFormat.parse(bad) }
        }
    }

    @Test func labelMatchesAndPruneFilter() {
        #expect(LabelMatch(parsing: "a").matches(["a": "1"]))
        #expect(LabelMatch(parsing: "a=1").matches(["a": "1"]))
        #expect(!LabelMatch(parsing: "a=2").matches(["a": "1"]))
        #expect(LabelMatch(parsing: "a=").matches(["a": ""]))
        var config = Engine.placeholderConfig(id: String(repeating: "a", count: 64))
        config.created = Timestamp(seconds: 100)
        config.labels = ["keep": "yes"]
        #expect(ContainerPruneFilter(until: Timestamp(seconds: 200)).admits(config))
        #expect(!ContainerPruneFilter(until: Timestamp(seconds: 50)).admits(config))
        #expect(!ContainerPruneFilter(notLabels: [LabelMatch(key: "keep")]).admits(config))
        #expect(ContainerPruneFilter(labels: [LabelMatch(key: "keep", value: "yes")]).admits(config))
    }

    @Test func restartPolicyFrameRoundTrips() throws {
        for p in [RestartPolicy.no, .always, .unlessStopped, .onFailure(maxRetries: 3)] {
            var bytes = MonitorFrame.policy(p).encode()
            #expect(try MonitorFrame.decode(&bytes) == .policy(p))
        }
    }

    @Test func bootRestartFollowsThePolicy() {
        func container(_ policy: String, manualStop: Bool, started: Bool = true, autoRemove: Bool = false) -> Container {
            var c = Engine.placeholderConfig(id: String(repeating: "b", count: 64))
            c.restartPolicy = policy
            c.autoRemove = autoRemove
            var s = MonitorState(status: "exited")
            s.manualStop = manualStop
            return Container(config: c, state: started ? s : nil, status: .exited, paths: ContainerPaths(dir: "/x", runDir: "/y"))
        }
        #expect(Engine.restartsAtBoot(container("always", manualStop: true)))
        #expect(Engine.restartsAtBoot(container("unless-stopped", manualStop: false)))
        #expect(!Engine.restartsAtBoot(container("unless-stopped", manualStop: true)))
        #expect(!Engine.restartsAtBoot(container("on-failure", manualStop: false)))
        #expect(!Engine.restartsAtBoot(container("no", manualStop: false)))
        #expect(!Engine.restartsAtBoot(container("always", manualStop: false, started: false)), "never started: stays created")
    }

    @Test func logWindow() throws {
        let dir = "/tmp/hako-logwindow-\(getpid())"
        try FS.makeDirectories(dir, mode: 0o700)
        defer { try? FS.removeTree(dir) }
        let log = """
            2026-01-01T10:00:00.000000000Z stdout F one
            2026-01-01T10:00:05.000000000Z stdout F two
            2026-01-01T10:00:10.000000000Z stderr F three

            """
        try FS.writeFile(dir + "/container.log", Array(log.utf8))
        func read(since: String?, until: String?, tail: Int? = nil) -> [String] {
            var out: [String] = []
            LogReader(path: dir + "/container.log", maxFiles: 1).read(
                tail: tail, since: since.flatMap { Timestamp(rfc3339: $0) }, until: until.flatMap { Timestamp(rfc3339: $0) },
                follow: false, stillRunning: { false }) { out.append(String(decoding: $0.text, as: UTF8.self)) }
            return out
        }
        #expect(read(since: nil, until: nil) == ["one", "two", "three"])
        #expect(read(since: "2026-01-01T10:00:05Z", until: nil) == ["two", "three"])
        #expect(read(since: nil, until: "2026-01-01T10:00:05Z") == ["one"])
        #expect(read(since: "2026-01-01T10:00:01Z", until: "2026-01-01T10:00:09Z") == ["two"])
        #expect(read(since: "2026-01-01T10:00:01Z", until: nil, tail: 1) == ["three"])
    }
}
