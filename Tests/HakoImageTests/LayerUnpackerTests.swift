import HakoTestSupport
import Testing
import Glibc
import HakoSystem
@testable import HakoImage

/// The unpacker applies entries inside the root only: every escape is
/// refused or lands inside, and the rest of the temp dir stays untouched.
@Suite(.needsRoot) struct LayerUnpackerTests {
    /// A temp dir holding `root` (the layer) and `outside` (a decoy with one file).
    final class Sandbox {
        let tmp: TempDir
        let root: String
        let outside: String

        init() throws {
            tmp = try TempDir("hako-unpack")
            root = try tmp.makeDir("root")
            outside = try tmp.makeDir("outside")
            try FS.writeAtomic(outside + "/secret", "host data")
        }

        @discardableResult
        func unpack(_ b: TarBuilder, options: UnpackOptions = UnpackOptions()) throws -> UnpackResult {
            try LayerUnpacker(options: options).unpack(BytesSource(b.archive), into: root)
        }

        /// Nothing outside the root changed.
        func expectOutsideUntouched(sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(names(tmp.path) == ["outside", "root"], sourceLocation: sourceLocation)
            #expect(names(outside) == ["secret"], sourceLocation: sourceLocation)
            #expect(readText(outside + "/secret") == "host data", sourceLocation: sourceLocation)
        }
    }

    private func expectRefused(_ b: TarBuilder, _ fragment: String, options: UnpackOptions = UnpackOptions(),
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let box = try Sandbox()
        let message = errorText { try box.unpack(b, options: options) }
        #expect(message?.contains(fragment) == true, "got: \(message ?? "no error")", sourceLocation: sourceLocation)
        box.expectOutsideUntouched(sourceLocation: sourceLocation)
    }

    @Test func refusesDotDotEscapes() throws {
        for path in ["../escaped", "a/../../escaped", "./../outside/secret", "../../../../../../tmp/escaped"] {
            var b = TarBuilder()
            b.file(path, "x")
            try expectRefused(b, "refusing archive entry \"\(path)\": its path climbs above the layer root")
        }
    }

    @Test func namesWithNULBytesAreRefused() throws {
        var b = TarBuilder()
        b.pax([("path", Array("dir/evil\0suffix".utf8))])
        b.file("placeholder", "x")
        try expectRefused(b, "contains a NUL byte")
    }

    @Test func absolutePathsLandInsideTheRoot() throws {
        let box = try Sandbox()
        var b = TarBuilder()
        b.file(box.outside + "/secret", "overwritten?")
        b.file("/abs", "a")
        try box.unpack(b)
        #expect(readText(box.root + box.outside + "/secret") == "overwritten?")
        #expect(readText(box.root + "/abs") == "a")
        box.expectOutsideUntouched()
    }

    @Test func nonDirectoriesCannotReplaceTheRoot() throws {
        for path in [".", "/", "./", "a/..", "//"] {
            var s = TarBuilder()
            s.symlink(path, to: "/")
            try expectRefused(s, "a non-directory cannot replace the layer root")
            var f = TarBuilder()
            f.file(path, "x")
            try expectRefused(f, "a non-directory cannot replace the layer root")
        }
    }

    @Test func writingThroughEscapingSymlinksIsRefused() throws {
        let box = try Sandbox()
        // Each escape names the entry and its symlink; nothing lands anywhere.
        let escapes: [(String, String, String)] = [
            ("abs", box.outside, "abs/secret"),                              // absolute, to a host directory
            ("rel", "../../../../../../../../" + box.outside, "rel/new"),   // relative, climbing out
            ("dotdot", "..", "dotdot/up"),                                    // the root's parent
            ("slash", "/", "slash/etc/passwd"),                               // the root itself, absolutely
            ("var/run", "/run", "var/run/pid"),                               // a common absolute link
            ("d/up", "../../x", "d/up/z"),                                    // climbs from below
        ]
        for (link, target, entry) in escapes {
            var b = TarBuilder()
            b.dir("d/")
            b.symlink(link, to: target)
            b.file(entry, "through \(link)")
            try expectRefused(b, "refusing archive entry \"\(entry)\": its parent")
        }
        // Directories made through an escaping link are refused the same way.
        var dir = TarBuilder()
        dir.symlink("abs", to: box.outside)
        dir.dir("abs/sub/")
        try expectRefused(dir, "is a symlink pointing out of the layer")
        // And a hardlink whose target goes through one.
        var hard = TarBuilder()
        hard.symlink("sl", to: box.outside)
        hard.hardlink("h", to: "sl/secret")
        try expectRefused(hard, "does not exist in this layer")
        box.expectOutsideUntouched()
    }

    @Test func symlinksInsideTheLayerAreFollowed() throws {
        let box = try Sandbox()
        var b = TarBuilder()
        b.dir("usr/lib/")
        b.symlink("lib", to: "usr/lib")             // merged-/usr style, relative
        b.file("lib/libc.so", "c")
        b.dir("usr/share/")
        b.symlink("usr/doc", to: "../usr/share")    // climbs and comes back down, inside
        b.file("usr/doc/readme", "r")
        try box.unpack(b)
        #expect(readText(box.root + "/usr/lib/libc.so") == "c")
        #expect(readText(box.root + "/usr/share/readme") == "r")
        #expect(FS.readLink(box.root + "/lib") == "usr/lib")
        box.expectOutsideUntouched()
    }

    @Test func aSymlinkCannotReplaceADirectory() throws {
        var b = TarBuilder()
        b.dir("etc/")
        b.file("etc/passwd", "root")
        b.symlink("etc", to: "/tmp")
        b.file("etc/shadow", "x")
        try expectRefused(b, "refusing archive entry \"etc\": a symlink cannot replace a directory of the same layer")
    }

    @Test func loopingAndBrokenParents() throws {
        var loop = TarBuilder()
        loop.symlink("a", to: "b")
        loop.symlink("b", to: "a")
        loop.file("a/x", "x")
        try expectRefused(loop, "too many levels of symbolic links")

        var notDir = TarBuilder()
        notDir.file("f", "x")
        notDir.file("f/g", "y")
        try expectRefused(notDir, "its parent \"f\" is not a directory")

        // A dangling relative link inside the layer: its target is made.
        let box = try Sandbox()
        var dangling = TarBuilder()
        dangling.symlink("data", to: "srv/data")
        dangling.file("data/file", "d")
        try box.unpack(dangling)
        #expect(readText(box.root + "/srv/data/file") == "d")
        box.expectOutsideUntouched()
    }

    @Test func finalComponentSymlinkIsReplacedNotFollowed() throws {
        let box = try Sandbox()
        var b = TarBuilder()
        b.symlink("victim", to: box.outside + "/secret")
        b.file("victim", "replaced")
        b.symlink("dirlink", to: box.outside)
        b.dir("dirlink/")
        try box.unpack(b)
        #expect(fileType(box.root + "/victim") == S_IFREG)
        #expect(readText(box.root + "/victim") == "replaced")
        #expect(fileType(box.root + "/dirlink") == S_IFDIR)
        box.expectOutsideUntouched()
    }

    @Test func hardlinkEscapesAreRefused() throws {
        let outside = "../outside/secret"
        var up = TarBuilder()
        up.hardlink("h", to: outside)
        try expectRefused(up, "hardlink target \"\(outside)\" is outside the layer")

        let box = try Sandbox()
        var abs = TarBuilder()
        abs.hardlink("h", to: box.outside + "/secret")  // absolute: means inside the layer, where it does not exist
        let m1 = errorText { try box.unpack(abs) }
        #expect(m1?.contains("does not exist in this layer") == true, "got: \(m1 ?? "no error")")
        box.expectOutsideUntouched()

        var viaSymlink = TarBuilder()
        viaSymlink.symlink("sl", to: box.outside)
        viaSymlink.hardlink("h", to: "sl/secret")
        let box2 = try Sandbox()
        let m2 = errorText { try box2.unpack(viaSymlink) }
        #expect(m2?.contains("does not exist in this layer") == true, "got: \(m2 ?? "no error")")
        box2.expectOutsideUntouched()

        var missing = TarBuilder()
        missing.hardlink("h", to: "nowhere")
        try expectRefused(missing, "hardlink target \"nowhere\" does not exist in this layer")

        var toRoot = TarBuilder()
        toRoot.hardlink("h", to: "./")
        try expectRefused(toRoot, "is outside the layer")
    }

    @Test func hardlinksInsideTheLayer() throws {
        let box = try Sandbox()
        var b = TarBuilder()
        b.file("etc/passwd", "root:x:0:0")
        b.hardlink("etc/passwd-", to: "/etc/passwd")
        try box.unpack(b)
        let a = lstatOf(box.root + "/etc/passwd"), c = lstatOf(box.root + "/etc/passwd-")
        #expect(a?.st_ino == c?.st_ino)
        #expect(a?.st_nlink == 2)
        box.expectOutsideUntouched()
    }

    @Test func devicesNeedTheOption() throws {
        var b = TarBuilder()
        b.device("dev/null", major: 1, minor: 3)
        try expectRefused(b, "refusing archive entry \"dev/null\": device nodes are not allowed")
        let box = try Sandbox()
        try box.unpack(b, options: UnpackOptions(allowDevices: true))
        let st = lstatOf(box.root + "/dev/null")
        #expect(st.map { $0.st_mode & S_IFMT } == S_IFCHR)
        #expect(st?.st_rdev == FileTree.makeDevice(1, 3))
        box.expectOutsideUntouched()
    }

    @Test func badWhiteoutNames() throws {
        for name in [".wh.", "a/.wh..", "a/.wh.."] {
            var b = TarBuilder()
            b.file(name)
            try expectRefused(b, "whiteout for an invalid name")
        }
        var asDir = TarBuilder()
        asDir.file(".wh.a/b")
        try expectRefused(asDir, "a whiteout name is used as a directory")
    }

    /// privateRoot: files created with their permission bits at once (a
    /// snapshot's temp dir) or 0600 until complete (a container's tree): the
    /// same result either way.
    @Test(arguments: [false, true]) func metadataIsApplied(privateRoot: Bool) throws {
        let box = try Sandbox()
        var b = TarBuilder()
        b.dir("./", mode: 0o750, mtime: 1_000)
        b.dir("d/", mode: 0o711, mtime: 2_000)
        b.file("d/suid", "#!", mode: 0o4755, uid: 1234, gid: 5678, mtime: 3_000)
        b.file("d/sticky-setgid", "", mode: 0o3775, mtime: 4_000)
        b.pax([("SCHILY.xattr.user.note", Array("hi".utf8)), ("SCHILY.xattr.trusted.t", [1, 2]),
               ("SCHILY.xattr.trusted.overlay.opaque", Array("y".utf8)), ("mtime", Array("5000.5".utf8))])
        b.file("d/attrs", "x")
        b.symlink("d/link", to: "suid")
        let result = try box.unpack(b, options: UnpackOptions(privateRoot: privateRoot))
        func st(_ p: String) -> stat? { lstatOf(box.root + "/" + p) }
        #expect(st("d/suid").map { $0.st_mode & 0o7777 } == 0o4755)
        #expect(st("d/suid")?.st_uid == 1234)
        #expect(st("d/suid")?.st_gid == 5678)
        #expect(st("d/suid")?.st_mtim.tv_sec == 3_000)
        #expect(st("d/sticky-setgid").map { $0.st_mode & 0o7777 } == 0o3775)
        #expect(st("d/attrs")?.st_mtim.tv_sec == 5_000)
        #expect(st("d/attrs")?.st_mtim.tv_nsec == 500_000_000)
        #expect(xattr(box.root + "/d/attrs", "user.note") == "hi")
        #expect(Xattr.get(box.root + "/d/attrs", "trusted.t") == [1, 2])
        #expect(xattr(box.root + "/d/attrs", "trusted.overlay.opaque") == nil)
        #expect(result.warnings.count == 1)
        #expect(result.warnings.first?.contains("trusted.overlay.opaque") == true)
        // Directory times are set after their content was written.
        #expect(st("d")?.st_mtim.tv_sec == 2_000)
        #expect(st("d").map { $0.st_mode & 0o7777 } == 0o711)
        #expect(st("")?.st_mtim.tv_sec == 1_000)
        #expect(st("").map { $0.st_mode & 0o7777 } == 0o750)
        #expect(FS.readLink(box.root + "/d/link") == "suid")
        #expect(result.entries == 6)
        #expect(result.contentSize == 3)
        #expect(result.compression == .none)
        #expect(result.uncompressedSize == Int64(b.archive.count))
        #expect(result.diffID == (try Digest.sha256(of: b.archive)))
    }

    /// What a new file does not get from its creation is set: a mode the
    /// umask cuts, root's group inside a setgid directory of another group,
    /// an owner other than the unpacker's, setgid after a chown.
    @Test(arguments: [false, true]) func ownerAndModeWhereCreationDiffers(privateRoot: Bool) throws {
        let box = try Sandbox()
        let shared = box.root + "/shared"
        #expect(mkdir(shared, 0o755) == 0)
        #expect(chown(shared, 0, 4321) == 0)
        #expect(chmod(shared, 0o2775) == 0)
        var b = TarBuilder()
        b.file("open", "x", mode: 0o666)
        b.file("shared/rootgroup", "y", mode: 0o640, uid: 0, gid: 0)
        b.file("shared/inherited", "z", mode: 0o644, uid: 0, gid: 4321)
        b.file("owned", "w", mode: 0o2750, uid: 77, gid: 88)
        b.file("plain", "v", mode: 0o600, mtime: 1_234)
        try box.unpack(b, options: UnpackOptions(privateRoot: privateRoot))
        func st(_ p: String) -> stat? { lstatOf(box.root + "/" + p) }
        #expect(st("open").map { $0.st_mode & 0o7777 } == 0o666)  // more than the usual umask (022) lets open() give
        #expect(st("shared/rootgroup")?.st_uid == 0)
        #expect(st("shared/rootgroup")?.st_gid == 0)
        #expect(st("shared/rootgroup").map { $0.st_mode & 0o7777 } == 0o640)
        #expect(st("shared/inherited")?.st_gid == 4321)
        #expect(st("owned")?.st_uid == 77)
        #expect(st("owned")?.st_gid == 88)
        #expect(st("owned").map { $0.st_mode & 0o7777 } == 0o2750)
        #expect(st("plain").map { $0.st_mode & 0o7777 } == 0o600)
        #expect(st("plain")?.st_mtim.tv_sec == 1_234)
        #expect(readText(box.root + "/plain") == "v")
    }

    @Test(arguments: [false, true]) func replacementsFollowLayerSemantics(privateRoot: Bool) throws {
        let box = try Sandbox()
        var b = TarBuilder()
        b.file("x", "file first")
        b.dir("x/")            // a file replaced by a directory
        b.file("x/inner", "in")
        b.dir("y/")
        b.file("y/child", "c")
        b.file("y", "now a file")  // a directory (with content) replaced by a file
        b.dir("z/")
        b.file("z/keep", "k")
        b.dir("z/", mode: 0o700, mtime: 7_000)  // a directory entry again: contents stay, metadata updates
        b.file("w", "one")
        b.file("w", "two")
        b.symlink("s", to: "w")
        b.symlink("s", to: "x")    // a symlink replaced by a symlink
        try box.unpack(b, options: UnpackOptions(privateRoot: privateRoot))
        #expect(FS.readLink(box.root + "/s") == "x")
        #expect(fileType(box.root + "/x") == S_IFDIR)
        #expect(readText(box.root + "/x/inner") == "in")
        #expect(readText(box.root + "/y") == "now a file")
        #expect(readText(box.root + "/z/keep") == "k")
        #expect(lstatOf(box.root + "/z").map { $0.st_mode & 0o777 } == 0o700)
        #expect(lstatOf(box.root + "/z")?.st_mtim.tv_sec == 7_000)
        #expect(readText(box.root + "/w") == "two")
        box.expectOutsideUntouched()
    }

    @Test func gzipLayerFromTarWithDiffIDOfTheUncompressedStream() throws {
        let tmp = try TempDir()
        let src = try tmp.makeDir("src")
        try FS.makeDirectories(src + "/usr/bin")
        try FS.writeAtomic(src + "/usr/bin/tool", "#!/bin/sh\n")
        let root = try tmp.makeDir("root")
        try run(["/usr/bin/tar", "--format=gnu", "-cf", tmp.sub("l.tar"), "-C", src, "."])
        try run(["/bin/sh", "-c", "gzip -c \(tmp.sub("l.tar")) > \(tmp.sub("l.tar.gz"))"])
        let result = try LayerUnpacker().unpack(FileSource.open(tmp.sub("l.tar.gz")), into: root)
        let plain = try FS.readFile(tmp.sub("l.tar"))
        #expect(result.compression == .gzip)
        #expect(result.diffID == (try Digest.sha256(of: plain)))
        #expect(result.uncompressedSize == Int64(plain.count))  // GNU tar pads to 10240 bytes; all of it counts
        #expect(readText(root + "/usr/bin/tool") == "#!/bin/sh\n")
    }
}
