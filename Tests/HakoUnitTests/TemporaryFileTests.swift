#if canImport(Glibc)
import Glibc
#endif
@testable import HakoEngine
import HakoSystem
import Testing

/// Temporary files carry their writer's pid, so the next owner of the
/// directory removes a dead writer's and leaves a live one's alone.
@Suite struct TemporaryFileTests {
    @Test func namesCarryTheWritersPid() {
        #expect(FS.temporaryPath(for: "/a/b.json") == "/a/b.json.tmp.\(getpid())")
        #expect(FS.temporaryWriter("b.json.tmp.\(getpid())") == getpid())
        #expect(FS.temporaryWriter("x.tmp.1") == 1)
        for other in ["b.json", "b.json.tmp", "b.json.tmp.", "b.json.tmp.12a", "b.tmpx.12", "b.json.tmp.-3", "b.json.tmp.0",
                      "tmp.12", "b.json.tmp.99999999999", ".tmp-abc", "snapshot-1234"] {
            #expect(FS.temporaryWriter(other) == nil, "\(other)")
        }
        #expect(FS.parentDirectory("/a/b") == "/a" && FS.parentDirectory("/b") == "/" && FS.parentDirectory("b") == ".")
    }

    @Test func deadWritersFilesAreRemovedLiveOnesKept() throws {
        let dir = tempDir("hako-tmpfiles")
        defer { try? FS.removeTree(dir) }
        // A pid that is gone: a child that has exited and been reaped.
        let child = fork()
        if child == 0 { _exit(0) }
        var status: Int32 = 0
        waitpid(child, &status, 0)
        let dead = "\(dir)/e.json.tmp.\(child)", mine = "\(dir)/e.json.tmp.\(getpid())", ofInit = "\(dir)/e.json.tmp.1"
        let kept = "\(dir)/e.json", other = "\(dir)/notes.tmp"
        for f in [dead, mine, ofInit, kept, other] { try FS.writeFile(f, []) }
        #expect(FS.removeOrphanedTemporaries(in: dir) == 1)
        #expect(!FS.exists(dead))
        for f in [mine, ofInit, kept, other] { #expect(FS.exists(f), "\(f)") }
        // With a prefix, only the files of that target.
        let deadOther = "\(dir)/.out.tar.tmp.\(child)", deadAside = "\(dir)/.in.tar.tmp.\(child)"
        for f in [deadOther, deadAside] { try FS.writeFile(f, []) }
        #expect(FS.removeOrphanedTemporaries(in: dir, prefix: ".out.tar.tmp.") == 1)
        #expect(!FS.exists(deadOther) && FS.exists(deadAside))
        // A directory (a volume being built) goes whole.
        let deadDir = "\(dir)/.v.tmp.\(child)"
        try FS.makeDirectories(deadDir + "/_data/sub")
        try FS.writeFile(deadDir + "/_data/sub/f", [1])
        #expect(FS.removeOrphanedTemporaries(in: dir, prefix: ".v.tmp.") == 1 && !FS.exists(deadDir))
        // An atomic write leaves no temporary file.
        try FS.writeAtomic(dir + "/w.json", "{}")
        #expect(!FS.exists(FS.temporaryPath(for: dir + "/w.json")))
    }

    /// The kernel's per-string limit (MAX_ARG_STRLEN, 32 pages with the NUL)
    /// is checked at create; the number of strings is not limited.
    @Test func execStringLimits() throws {
        let page = 4096
        try Engine.checkExecStrings(args: (1...10_000).map { "a\($0)" }, env: (1...5_000).map { "V\($0)=x" }, pageSize: page)
        try Engine.checkExecStrings(args: [String(repeating: "a", count: 32 * page - 1)], env: ["K=" + String(repeating: "v", count: 32 * page - 3)], pageSize: page)
        #expect(throws: HakoError.self) { try Engine.checkExecStrings(args: [String(repeating: "a", count: 32 * page)], env: [], pageSize: page) }
        do {
            try Engine.checkExecStrings(args: ["sh"], env: ["BIG=" + String(repeating: "v", count: 1 << 20)], pageSize: page)
            Issue.record("a 1 MiB variable passed")
        } catch let e as HakoError {
            #expect(e.description.contains("BIG") && e.description.contains("131071"), "\(e)")
        }
        // 16 KiB pages (a Raspberry Pi 5's kernel): 512 KiB per string.
        try Engine.checkExecStrings(args: [], env: ["K=" + String(repeating: "v", count: 400_000)], pageSize: 16384)
    }
}
