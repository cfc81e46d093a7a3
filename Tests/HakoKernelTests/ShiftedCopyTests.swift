#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import HakoTestSupport
import Testing
@testable import HakoImage

/// The `--userns auto` fallback copy: every kind of file a layer holds,
/// owners moved into the container's range, everything else kept.
@Suite(.needsRoot) struct ShiftedCopyTests {
    @Test func everyKindOfFileKeepsItsShapeAndGetsShiftedOwners() throws {
        let tmp = try TempDir("hako-shift")
        let src = try tmp.makeDir("src")
        try FS.makeDirectories(src + "/d/opaque")
        try FS.writeFile(src + "/d/file", Array("data".utf8), mode: 0o640)
        #expect(chown(src + "/d/file", 1000, 1001) == 0)
        try FS.writeFile(src + "/suid", Array("x".utf8), mode: 0o755)
        #expect(chmod(src + "/suid", 0o4755) == 0)
        #expect(link(src + "/d/file", src + "/hard") == 0)
        try FS.symlink("d/file", at: src + "/link")
        #expect(lchown(src + "/link", 7, 7) == 0)
        #expect(mkfifo(src + "/fifo", 0o600) == 0)
        #expect(mknod(src + "/d/.gone", S_IFCHR | 0o000, 0) == 0)   // an overlay whiteout
        #expect(Xattr.set(src + "/d/opaque", "trusted.overlay.opaque", Array("y".utf8), follow: false) == 0)
        #expect(chown(src + "/d/opaque", 70000, 0) == 0)            // beyond the range: its last id

        let dst = tmp.sub("dst")
        try ShiftedCopy.copy(from: src, to: dst, start: 100_000, count: 65_536)

        func owner(_ p: String) -> (UInt32, UInt32)? { lstatOf(dst + p).map { ($0.st_uid, $0.st_gid) } }
        #expect(owner("")! == (100_000, 100_000))
        #expect(owner("/d/file")! == (101_000, 101_001))
        #expect(owner("/link")! == (100_007, 100_007))
        #expect(owner("/d/opaque")! == (165_535, 100_000))
        #expect(readText(dst + "/d/file") == "data")
        #expect(lstatOf(dst + "/d/file").map { $0.st_mode & 0o7777 } == 0o640)
        #expect(lstatOf(dst + "/suid").map { $0.st_mode & 0o7777 } == 0o4755, "setuid survives the chown")
        #expect(lstatOf(dst + "/hard")?.st_ino == lstatOf(dst + "/d/file")?.st_ino, "a hard link stays one")
        #expect(FS.readLink(dst + "/link") == "d/file")
        #expect(fileType(dst + "/fifo") == S_IFIFO)
        #expect(fileType(dst + "/d/.gone") == S_IFCHR && lstatOf(dst + "/d/.gone")?.st_rdev == 0)
        #expect(xattr(dst + "/d/opaque", "trusted.overlay.opaque") == "y")
    }

    @Test func aMissingSourceNamesThePathAndLeavesNoCopy() throws {
        let tmp = try TempDir("hako-shift")
        let message = errorText { try ShiftedCopy.copy(from: tmp.sub("absent"), to: tmp.sub("dst"), start: 1, count: 1) }
        #expect(message?.contains("absent") == true, "\(message ?? "no error")")
        #expect(lstatOf(tmp.sub("dst")) == nil)
    }
}
