#if canImport(Glibc)
import Glibc
#endif
@testable import HakoEngine
@testable import HakoRuntime
import HakoSystem
import Testing

@Suite struct EngineParsingTests {
    let passwd = """
    root:x:0:0:root:/root:/bin/sh
    # comment
    tester:x:1000:1000:tester:/home/tester:/bin/sh
    nobody:x:65534:65534:nobody:/nonexistent:/bin/false
    """
    let group = """
    root:x:0:
    tester:x:1000:
    audio:x:29:tester,other
    video:x:44:other
    """

    @Test func resolvesUsers() throws {
        #expect(try UserResolver.resolve("", passwd: passwd, group: group) == ResolvedUser(uid: 0, gid: 0, groups: [], home: "/root"))
        #expect(try UserResolver.resolve("tester", passwd: passwd, group: group) == ResolvedUser(uid: 1000, gid: 1000, groups: [29], home: "/home/tester"))
        #expect(try UserResolver.resolve("1000", passwd: passwd, group: group) == ResolvedUser(uid: 1000, gid: 1000, groups: [29], home: "/home/tester"))
        #expect(try UserResolver.resolve("4242:99", passwd: passwd, group: group) == ResolvedUser(uid: 4242, gid: 99, groups: [], home: "/"))
        #expect(try UserResolver.resolve("tester:video", passwd: passwd, group: group) == ResolvedUser(uid: 1000, gid: 44, groups: [], home: "/home/tester"))
        #expect(throws: HakoError.self) { try UserResolver.resolve("ghost", passwd: passwd, group: group) }
        #expect(throws: HakoError.self) { try UserResolver.resolve("tester:ghosts", passwd: passwd, group: group) }
        #expect(throws: HakoError.self) { try UserResolver.resolve("tester:", passwd: passwd, group: group) }
        #expect(throws: HakoError.self) { try UserResolver.resolve("nobody", passwd: nil, group: nil) }
    }

    @Test func envFiles() throws {
        let parsed = try EnvFile.parse("A=1\n# c\n\nB = spaced\nC=x=y\r\nHOMEISH\n", lookup: { $0 == "HOMEISH" ? "/h" : nil })
        #expect(parsed == ["A=1", "B= spaced", "C=x=y", "HOMEISH=/h"])
        #expect(throws: HakoError.self) { try EnvFile.parse("=x\n") }
        #expect(throws: HakoError.self) { try EnvFile.parse("BAD KEY\n") }
        #expect(EnvFile.merge(["PATH=/a", "X=1"], ["X=2"], ["Y=3", "PATH=/b"]) == ["PATH=/b", "X=2", "Y=3"])
    }

    @Test func signals() {
        #expect(Signals.parse("KILL") == 9)
        #expect(Signals.parse("SIGTERM") == 15)
        #expect(Signals.parse("sigusr1") == 10)
        #expect(Signals.parse("2") == 2)
        #expect(Signals.parse("RTMIN+2") == 36)
        #expect(Signals.parse("0") == nil)
        #expect(Signals.parse("99") == nil)
        #expect(Signals.parse("BOGUS") == nil)
        #expect(Signals.name(15) == "SIGTERM")
    }

    @Test func names() {
        for good in ["web", "a1", "my_app.v2-3"] { #expect(Names.isValid(good)) }
        for bad in ["", "a", "-x", "_x", "a b", "a/b", "ä1", String(repeating: "x", count: 200)] { #expect(!Names.isValid(bad)) }
        for _ in 0..<50 { #expect(Names.isValid(Names.generate())) }
    }

    @Test func byteSizes() throws {
        #expect(ByteSize.parse("1024") == 1024)
        #expect(ByteSize.parse("64m") == 64 << 20)
        #expect(ByteSize.parse("2G") == 2 << 30)
        #expect(ByteSize.parse("512kb") == 512 << 10)
        #expect(ByteSize.parse("64MiB") == 64 << 20)
        #expect(ByteSize.parse("1.5g") == 3 << 29, "decimals, as Docker's RAMInBytes (the three parsers disagreed here)")
        for bad in ["", "m", "-1", "1x", "1e3", "inf", " 1m", "99999999999999999999t", "9000000t"] { #expect(ByteSize.parse(bad) == nil, "\(bad)") }
    }

    @Test func timestamps() {
        let t = Timestamp(seconds: 1_795_918_774, nanoseconds: 123_456_789)
        #expect(t.rfc3339 == "2026-11-29T02:19:34.123456789Z")
        #expect(Timestamp(rfc3339: t.rfc3339) == t)
        #expect(Timestamp(rfc3339: "2026-11-29T02:19:34Z") == Timestamp(seconds: 1_795_918_774))
        #expect(Timestamp(rfc3339: "yesterday") == nil)
    }

    @Test func logRecords() {
        let r = LogRecord.parse(ArraySlice(Array("2026-11-29T02:19:34.000000001Z stderr F oops: a b".utf8)))
        #expect(r == LogRecord(time: "2026-11-29T02:19:34.000000001Z", stderr: true, endsLine: true, text: Array("oops: a b".utf8)))
        #expect(LogRecord.parse(ArraySlice(Array("2026 stdout P ".utf8)))?.text == [])
        #expect(LogRecord.parse(ArraySlice(Array("2026 stdin F x".utf8))) == nil)
        #expect(LogRecord.parse(ArraySlice(Array("garbage".utf8))) == nil)
    }

    @Test func logTail() throws {
        var template = Array("/tmp/hako-logtest-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        defer { try? FS.removeTree(dir) }
        try FS.writeAtomic(dir + "/c.log.1", "t stdout F one\nt stdout F two\n", durable: false)
        try FS.writeAtomic(dir + "/c.log", "t stderr F three\nt stdout P fo\nt stdout F ur\n", durable: false)
        func read(_ tail: Int?) -> [String] {
            var out: [String] = []
            LogReader(path: dir + "/c.log", maxFiles: 3).read(tail: tail, follow: false, stillRunning: { false }) {
                out.append(String(decoding: $0.text, as: UTF8.self))
            }
            return out
        }
        #expect(read(nil) == ["one", "two", "three", "fo", "ur"])
        #expect(read(2) == ["three", "fo", "ur"])
        #expect(read(0) == [])
        #expect(read(100) == ["one", "two", "three", "fo", "ur"])
    }

    @Test func doctorNamesTheMemoryControllerFix() {
        let files: [String: String] = [
            "/proc/self/mountinfo": unifiedMountinfo,
            "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io pids\n",
            "/proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t1\t1\nmemory\t0\t1\t0\n",
            "/proc/self/status": "Name: x\nSeccomp:\t0\n",
            "/proc/filesystems": "nodev\toverlay\n",
        ]
        let probe = Doctor.Probe(read: { files[$0] }, exists: { $0.hasPrefix("/proc/self/ns/") || $0 == "/sys/module/vxlan" }, kernelRelease: "6.6.31+rpt-rpi-v8")
        let checks = Doctor.run(probe)
        let memory = checks.first { $0.name == "memory cgroup" }
        #expect(memory?.level == .missing)
        #expect(memory?.fix?.contains("cgroup_enable=memory") == true)
        #expect(memory?.fix?.contains("cmdline.txt") == true)
        #expect(checks.first { $0.name == "vxlan" }?.level == .ok)
        #expect(checks.first { $0.name == "nftables" }?.level == .warning)
        #expect(checks.first { $0.name == "kernel" }?.level == .ok)
        let old = Doctor.run(Doctor.Probe(read: { files[$0] }, exists: { _ in true }, kernelRelease: "4.19.0"))
        #expect(old.first { $0.name == "kernel" }?.level == .missing)
    }
}

/// The next `create` collects what killed commands left in the containers
/// directory, but not what a running `--rm` monitor is still deleting.
@Suite struct GarbageCollectionTests {
    @Test func leavesALiveMonitorsRemovalToIt() throws {
        var template = Array("/tmp/hako-gc-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        defer { try? FS.removeTree(dir) }
        let engine = try Engine(paths: EnginePaths(root: dir + "/root", runRoot: dir + "/run"), monitorPath: "/nonexistent")
        let containers = engine.paths.containers
        let id = String(repeating: "ab", count: 32)
        let live = ".removing-\(id)-\(getpid())"
        // A pid above any pid_max: its monitor is gone.
        let names = [live, ".removing-\(id.dropLast())0-2147483647", ".removing-\(id.dropLast())1", ".tmp-\(id)"]
        for n in names {
            try FS.makeDirectories("\(containers)/\(n)/upper/etc")
            try FS.writeFile("\(containers)/\(n)/upper/etc/f", [1])
        }
        engine.collectGarbage()
        #expect(try FS.list(containers) == [live])
        #expect(Engine.remover(live) == getpid() && Engine.remover(".removing-\(id)") == nil && Engine.remover(".tmp-1-2") == nil)
    }
}
