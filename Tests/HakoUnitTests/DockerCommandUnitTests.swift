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
