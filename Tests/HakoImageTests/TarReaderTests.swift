import HakoTestSupport
import Testing
import Glibc
import HakoSystem
@testable import HakoImage

/// The tar reader against Debian's tar (GNU and PAX formats, gzip) and
/// against hand-built and damaged headers.
@Suite struct TarReaderTests {
    /// A tree with a long name, a long symlink target, a hardlink, a big file and an xattr.
    private func makeTree(_ tmp: TempDir) throws -> (root: String, longName: String, longTarget: String, big: [UInt8]) {
        let root = try tmp.makeDir("src")
        let longDir = String(repeating: "d", count: 60) + "/" + String(repeating: "e", count: 60)
        try FS.makeDirectories(root + "/" + longDir)
        let longName = longDir + "/" + String(repeating: "f", count: 50) + ".txt"
        try FS.writeAtomic(root + "/" + longName, "long")
        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        try FS.writeAtomic(root + "/big.bin", big)
        let longTarget = "/" + String(repeating: "t", count: 150)
        try FS.symlink(longTarget, at: root + "/longlink")
        try FS.symlink("big.bin", at: root + "/short")
        #expect(link(root + "/big.bin", root + "/hard.bin") == 0)
        #expect(Xattr.set(root + "/big.bin", "user.hako", Array("yes".utf8), follow: false) == 0)
        #expect(mkfifo(root + "/fifo", 0o600) == 0)
        return (root, longName, longTarget, big)
    }

    private func check(_ entries: [(TarEntry, [UInt8])], _ tree: (root: String, longName: String, longTarget: String, big: [UInt8]),
                       xattrs: Bool) {
        func entry(_ p: String) -> (TarEntry, [UInt8])? { entries.first { $0.0.path == p || $0.0.path == "./" + p } }
        #expect(entry(tree.longName)?.1 == Array("long".utf8))
        #expect(entry(tree.longName)?.0.kind == .regular)
        let big = entry("big.bin")
        let hard = entry("hard.bin")
        // One of the two names carries the content, the other is a hardlink to it.
        #expect(big?.0.kind == .hardlink || hard?.0.kind == .hardlink)
        #expect(big?.1 == tree.big || hard?.1 == tree.big)
        #expect(entry("longlink")?.0.kind == .symlink)
        #expect(entry("longlink")?.0.linkTarget == tree.longTarget)
        #expect(entry("short")?.0.linkTarget == "big.bin")
        #expect(entry("fifo")?.0.kind == .fifo)
        #expect(entries.contains { $0.0.kind == .directory && $0.0.path.hasSuffix(String(repeating: "e", count: 60) + "/") })
        if xattrs {
            let withXattr = [big, hard].compactMap { $0 }.first { $0.0.kind == .regular }
            #expect(withXattr?.0.xattrs["user.hako"] == Array("yes".utf8))
        }
    }

    @Test(arguments: ["gnu", "pax"])
    func readsArchivesMadeByTar(format: String) throws {
        let tmp = try TempDir()
        let tree = try makeTree(tmp)
        let archive = tmp.sub("a.tar")
        try run(["/usr/bin/tar", "--format=\(format)", "--xattrs", "--xattrs-include=user.*", "-cf", archive, "-C", tree.root, "."])
        check(try readAll(FileSource.open(archive)), tree, xattrs: format == "pax")
    }

    @Test func readsGzipArchives() throws {
        let tmp = try TempDir()
        let tree = try makeTree(tmp)
        let archive = tmp.sub("a.tar.gz")
        try run(["/usr/bin/tar", "--format=pax", "--xattrs", "--xattrs-include=user.*", "-czf", archive, "-C", tree.root, "."])
        let (kind, _) = try Compression.decompressing(FileSource.open(archive))
        #expect(kind == .gzip)
        check(try readAll(FileSource.open(archive)), tree, xattrs: true)
    }

    @Test func multiMemberGzip() throws {
        let tmp = try TempDir()
        let one = try run(["/bin/sh", "-c", "printf hello | gzip -c > \(tmp.sub("x.gz")); printf ' world' | gzip -c >> \(tmp.sub("x.gz")); echo ok"])
        #expect(one.contains("ok"))
        let source = try GzipSource(FileSource.open(tmp.sub("x.gz")))
        #expect(String(decoding: try source.read(upTo: 100), as: UTF8.self) == "hello world")
    }

    @Test func paxRecordsOverrideTheHeader() throws {
        var b = TarBuilder()
        let longPath = String(repeating: "p", count: 300)
        b.pax([("path", Array(longPath.utf8)), ("uid", Array("3000000".utf8)), ("mtime", Array("1234567890.25".utf8)),
               ("SCHILY.xattr.user.bin", [0, 1, 0xff]), ("comment", Array("ignored".utf8))])
        b.file("short", "data")
        var g = TarBuilder.header(name: "global", type: TarBuilder.TypeFlag.globalPax.rawValue, size: 12)
        TarBuilder.fixChecksum(&g)
        b.appendRaw(g, content: Array("9 path=x\n\n\n\n".utf8.prefix(12)))
        b.file("after-global", "z")
        let entries = try readAll(BytesSource(b.archive))
        #expect(entries.count == 2)
        #expect(entries[0].0.path == longPath)
        #expect(entries[0].0.uid == 3_000_000)
        #expect(entries[0].0.modified == Timestamp(seconds: 1_234_567_890, nanoseconds: 250_000_000))
        #expect(entries[0].0.xattrs["user.bin"] == [0, 1, 0xff])
        #expect(entries[0].1 == Array("data".utf8))
        #expect(entries[1].0.path == "after-global")
    }

    @Test func gnuLongNameAndBase256() throws {
        var b = TarBuilder()
        let name = String(repeating: "n", count: 180)
        b.appendRaw(TarBuilder.header(name: "././@LongLink", type: TarBuilder.TypeFlag.longName.rawValue, size: name.utf8.count + 1),
                    content: Array(name.utf8) + [0])
        var h = TarBuilder.header(name: "trunc", type: TarBuilder.TypeFlag.regular.rawValue, size: 3)
        // uid 2^32-2 in base-256 (GNU's encoding for numbers that do not fit in octal).
        for i in 108..<116 { h[i] = 0 }
        h[108] = 0x80
        h[112] = 0xff; h[113] = 0xff; h[114] = 0xff; h[115] = 0xfe
        TarBuilder.fixChecksum(&h)
        b.appendRaw(h, content: Array("abc".utf8))
        let entries = try readAll(BytesSource(b.archive))
        #expect(entries.count == 1)
        #expect(entries[0].0.path == name)
        #expect(entries[0].0.uid == 0xffff_fffe)
    }

    // MARK: malformed input

    private func expectMalformed(_ bytes: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let message = errorText { _ = try readAll(BytesSource(bytes)) }
        #expect(message?.contains(fragment) == true, "got: \(message ?? "no error")", sourceLocation: sourceLocation)
    }

    @Test func badChecksum() {
        var b = TarBuilder()
        b.file("a", "x")
        var bytes = b.archive
        bytes[0] = UInt8(ascii: "b")
        expectMalformed(bytes, "checksum mismatch")
    }

    @Test func badOctalField() {
        var h = TarBuilder.header(name: "a", type: TarBuilder.TypeFlag.regular.rawValue, size: 0)
        h[124] = UInt8(ascii: "9")
        TarBuilder.fixChecksum(&h)
        var b = TarBuilder()
        b.appendRaw(h)
        expectMalformed(b.archive, "invalid octal number in the size field")
    }

    @Test func truncatedContent() {
        var b = TarBuilder()
        b.file("a", String(repeating: "x", count: 2000))
        expectMalformed(Array(b.bytes.prefix(512 + 1000)), "content of \"a\" ends early")
    }

    @Test func truncatedHeaderAndMissingEnd() {
        var b = TarBuilder()
        b.file("a", "x")
        expectMalformed(b.bytes + [1, 2, 3], "partial header block")
        expectMalformed(b.bytes, "missing end-of-archive marker")
        expectMalformed([], "missing end-of-archive marker")
    }

    @Test func dataAfterEndMarker() {
        var b = TarBuilder()
        b.file("a", "x")
        var after = TarBuilder()
        after.file("b", "y")
        expectMalformed(b.bytes + [UInt8](repeating: 0, count: 512) + after.bytes, "data after an end-of-archive block")
    }

    @Test func oversizedAndBrokenPax() {
        var h = TarBuilder.header(name: "p", type: TarBuilder.TypeFlag.pax.rawValue, size: 1 << 30)
        TarBuilder.fixChecksum(&h)
        expectMalformed(h + [UInt8](repeating: 0, count: 1024), "exceeds")
        var b = TarBuilder()
        b.appendRaw(TarBuilder.header(name: "p", type: TarBuilder.TypeFlag.pax.rawValue, size: 9), content: Array("99 path=x".utf8))
        b.file("a")
        expectMalformed(b.archive, "PAX header")
        var c = TarBuilder()
        c.pax([("size", Array("-5".utf8))])
        c.file("a")
        expectMalformed(c.archive, "invalid size")
    }

    @Test func negativeBase256Size() {
        var h = TarBuilder.header(name: "a", type: TarBuilder.TypeFlag.regular.rawValue, size: 0)
        for i in 124..<136 { h[i] = 0xff }
        TarBuilder.fixChecksum(&h)
        expectMalformed(h + [UInt8](repeating: 0, count: 1024), "negative size")
    }

    @Test func hugeSizesDoNotOverflow() {
        for type in [TarBuilder.TypeFlag.globalPax, .regular] {
            var h = TarBuilder.header(name: "huge", type: type.rawValue, size: 0)
            h[124] = 0x80
            for i in 125..<136 { h[i] = 0xff }
            h[128] = 0x7f  // Int64.max in the low 8 bytes
            for i in 125..<128 { h[i] = 0 }
            TarBuilder.fixChecksum(&h)
            var b = TarBuilder()
            b.appendRaw(h)
            expectMalformed(b.archive, "ends early")
        }
    }

    @Test func unknownAndSparseTypes() {
        var b = TarBuilder()
        b.appendRaw(TarBuilder.header(name: "weird", type: UInt8(ascii: "Q"), size: 0))
        expectMalformed(b.archive, "unknown tar type flag 'Q'")
        var s = TarBuilder()
        s.appendRaw(TarBuilder.header(name: "sparse", type: UInt8(ascii: "S"), size: 0))
        expectMalformed(s.archive, "sparse")
    }

    @Test func compressionDetection() throws {
        #expect(Compression.detect([0x28, 0xb5, 0x2f, 0xfd, 0, 0]) == .zstd)
        let zstd = errorText { _ = try readAll(BytesSource([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3])) }
        #expect(zstd?.hasPrefix("malformed archive: zstd:") == true, "\(zstd ?? "no error")")
        let xz = errorText { _ = try readAll(BytesSource([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1])) }
        #expect(xz == "xz-compressed archives are not supported yet")
        let tmp = try TempDir()
        try run(["/bin/sh", "-c", "head -c 100000 /dev/urandom | gzip -c > \(tmp.sub("x.gz"))"])
        let gz = try FS.readFile(tmp.sub("x.gz"))
        func drainError(_ bytes: [UInt8]) -> String? { errorText { try GzipSource(BytesSource(bytes)).drain() } }
        #expect(drainError(gz) == nil)
        #expect(drainError(Array(gz.prefix(gz.count / 2)))?.contains("truncated gzip stream") == true)
        var corrupt = gz
        corrupt[gz.count - 6] ^= 0xff  // CRC
        #expect(drainError(corrupt)?.contains("gzip: incorrect data check") == true)
        #expect(drainError(gz + [0, 0, 0]) == nil)
        #expect(drainError(gz + [7])?.contains("unexpected data after the end of the gzip stream") == true)
    }

    @Test(.needsRoot) func zstdStreams() throws {
        let tmp = try TempDir()
        var b = TarBuilder()
        b.file("etc/zstd", "compressed with zstd")
        b.file("big", String(repeating: "0123456789", count: 50_000))
        try FS.writeAtomic(tmp.sub("l.tar"), b.archive)
        // Two frames back to back, as `zstd` writes for concatenated input.
        try run(["/bin/sh", "-c", "zstd -q -c \(tmp.sub("l.tar")) > \(tmp.sub("l.zst"))"])
        let z = try FS.readFile(tmp.sub("l.zst"))
        let entries = try readAll(BytesSource(z))
        #expect(entries.map(\.0.path) == ["etc/zstd", "big"])
        #expect(entries[1].1.count == 500_000)
        let root = try tmp.makeDir("root")
        let result = try LayerUnpacker().unpack(BytesSource(z), into: root)
        #expect(result.compression == .zstd)
        #expect(result.diffID == (try Digest.sha256(of: b.archive)))
        #expect(readText(root + "/etc/zstd") == "compressed with zstd")
        #expect(errorText { _ = try ZstdSource(BytesSource(Array(z.prefix(z.count / 2)))).drain() } == "malformed archive: truncated zstd stream")
        #expect(errorText { try ZstdSource(BytesSource(z + z)).drain() } == nil)
    }
}
