import HakoTestSupport
import Testing
import Glibc
import HakoSystem
@testable import HakoImage

/// Whiteouts and opaque directories in overlay form, checked on disk and
/// through a real overlay mount of three layers.
@Suite(.needsRoot) struct WhiteoutTests {
    private func isWhiteout(_ path: String) -> Bool {
        guard let st = lstatOf(path) else { return false }
        return st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0
    }

    private func unpack(_ b: TarBuilder, into dir: String) throws {
        _ = try LayerUnpacker().unpack(BytesSource(b.archive), into: dir)
    }

    @Test func whiteoutsBecomeCharDevicesAndOpaqueMarkersXattrs() throws {
        let tmp = try TempDir("hako-wh")
        let root = try tmp.makeDir("layer")
        var b = TarBuilder()
        b.file("a/.wh.gone")
        b.file(".wh.top")
        b.dir("o/")
        b.file("o/.wh..wh..opq")
        b.file("p/.wh..wh..opq")   // the directory itself is not in the archive
        b.file(".wh..wh.plnk")     // other AUFS metadata: ignored
        try unpack(b, into: root)
        #expect(isWhiteout(root + "/a/gone"))
        #expect(isWhiteout(root + "/top"))
        #expect(xattr(root + "/o", "trusted.overlay.opaque") == "y")
        #expect(xattr(root + "/p", "trusted.overlay.opaque") == "y")
        #expect(names(root) == ["a", "o", "p", "top"])
        #expect(names(root + "/a") == ["gone"])
    }

    @Test func markersOnlyHideLowerLayersWhateverTheirPosition() throws {
        let tmp = try TempDir("hako-wh")
        let root = try tmp.makeDir("layer")
        var b = TarBuilder()
        // An opaque marker after files of its directory keeps them.
        b.dir("d/")
        b.file("d/mine", "kept")
        b.file("d/.wh..wh..opq")
        // A whiteout after this layer's own file keeps the file.
        b.file("f", "kept too")
        b.file(".wh.f")
        // A whiteout naming this layer's directory makes it opaque instead.
        b.dir("g/")
        b.file("g/inner", "in")
        b.file(".wh.g")
        // A directory after a whiteout of the same name replaces it, opaque.
        b.file(".wh.h")
        b.dir("h/")
        b.file("h/new", "new")
        // A file after a whiteout of the same name replaces it.
        b.file(".wh.i")
        b.file("i", "file")
        try unpack(b, into: root)
        #expect(readText(root + "/d/mine") == "kept")
        #expect(xattr(root + "/d", "trusted.overlay.opaque") == "y")
        #expect(readText(root + "/f") == "kept too")
        #expect(readText(root + "/g/inner") == "in")
        #expect(xattr(root + "/g", "trusted.overlay.opaque") == "y")
        #expect(fileType(root + "/h") == S_IFDIR)
        #expect(readText(root + "/h/new") == "new")
        #expect(xattr(root + "/h", "trusted.overlay.opaque") == "y")
        #expect(readText(root + "/i") == "file")
    }

    /// Layer 1 has files; layer 2 deletes some; layer 3 re-adds one and makes
    /// a directory opaque. The overlay mount must show Docker's result.
    @Test func overlayMountOfThreeLayersShowsDockerSemantics() throws {
        let tmp = try TempDir("hako-ovl")
        let l1 = try tmp.makeDir("l1"), l2 = try tmp.makeDir("l2"), l3 = try tmp.makeDir("l3")
        let mnt = try tmp.makeDir("mnt")

        var one = TarBuilder()
        one.dir("a/"); one.file("a/f1", "one"); one.file("a/f2", "two"); one.file("a/f4", "four")
        one.dir("d/"); one.file("d/x", "x"); one.dir("d/sub/"); one.file("d/sub/y", "y")
        one.file("keep", "k")
        one.file("rm-me", "bye")
        try unpack(one, into: l1)

        var two = TarBuilder()
        two.dir("a/"); two.file("a/.wh.f1"); two.file("a/.wh.f2"); two.file("a/f3", "three")
        two.file(".wh.rm-me")
        two.dir("d/"); two.file("d/from2", "2")
        try unpack(two, into: l2)

        var three = TarBuilder()
        three.dir("a/"); three.file("a/f1", "again")
        three.dir("d/"); three.file("d/new", "new"); three.file("d/.wh..wh..opq")
        try unpack(three, into: l3)

        let options = "lowerdir=\(l3):\(l2):\(l1)"
        guard mount("overlay", mnt, "overlay", UInt(MS_RDONLY), options) == 0 else {
            Issue.record("mount overlay: \(String(cString: strerror(errno)))")
            return
        }
        defer { umount2(mnt, 0) }

        #expect(readText(mnt + "/a/f1") == "again")        // re-added above its whiteout
        #expect(lstatOf(mnt + "/a/f2") == nil)              // deleted in layer 2
        #expect(readText(mnt + "/a/f3") == "three")
        #expect(readText(mnt + "/a/f4") == "four")
        #expect(names(mnt + "/a") == ["f1", "f3", "f4"])
        #expect(names(mnt + "/d") == ["new"])               // opaque: lower contents hidden
        #expect(readText(mnt + "/keep") == "k")
        #expect(lstatOf(mnt + "/rm-me") == nil)
        #expect(names(mnt) == ["a", "d", "keep"])
    }
}
