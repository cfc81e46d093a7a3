import HakoTestSupport
import Testing
import Foundation
import Glibc
import HakoSystem
@testable import HakoImage

/// The tree archiver against the kernel's own overlay: changes made through
/// a real overlay mount, archived from its upper directory (`commit`) and
/// unpacked as a layer, give the same tree; a merged archive (`export`) of
/// the layers lists what the mount shows.
@Suite(.needsRoot) struct TreeArchiverTests {
    /// Every path below `root` with its type and, for files, content.
    private func tree(_ root: String) -> [String] {
        var out: [String] = []
        func walk(_ rel: String) {
            for n in names(root + rel) {
                let p = rel + "/" + n
                guard let st = lstatOf(root + p) else { continue }
                switch st.st_mode & S_IFMT {
                case S_IFDIR: out.append(p + "/"); walk(p)
                case S_IFLNK: out.append(p + " -> " + (FS.readLink(root + p) ?? ""))
                case S_IFREG: out.append(p + " = " + (readText(root + p) ?? ""))
                default: out.append(p + " (special)")
                }
            }
        }
        walk("")
        return out
    }

    /// The tree a tar lists (regular files with content), as `tree` shows it.
    private func tarTree(_ bytes: [UInt8]) throws -> [String] {
        try readAll(BytesSource(bytes)).map { e, data in
            let p = "/" + (e.path.hasSuffix("/") ? String(e.path.dropLast()) : e.path)
            switch e.kind {
            case .directory: return p + "/"
            case .symlink: return p + " -> " + e.linkTarget
            case .regular: return p + " = " + String(decoding: data, as: UTF8.self)
            case .hardlink: return p + " = (link to \(e.linkTarget))"
            default: return p + " (special)"
            }
        }
    }

    private func mountOverlay(_ options: String, at mnt: String, readOnly: Bool) -> Bool {
        if mount("overlay", mnt, "overlay", readOnly ? UInt(MS_RDONLY) : 0, options) == 0 { return true }
        Issue.record("mount overlay: \(String(cString: strerror(errno)))")
        return false
    }

    @Test func commitOfAnOverlayUpperReproducesTheChanges() throws {
        let tmp = try TempDir("hako-tree")
        let lower = try tmp.makeDir("lower"), upper = try tmp.makeDir("upper"), work = try tmp.makeDir("work")
        let mnt = try tmp.makeDir("mnt")
        var base = TarBuilder()
        base.dir("etc/"); base.file("etc/passwd", "root"); base.file("etc/group", "g")
        base.dir("var/"); base.dir("var/cache/"); base.file("var/cache/a", "a"); base.file("var/cache/b", "b")
        base.dir("gone/"); base.file("gone/deep", "d")
        base.file("bin", "binary")
        _ = try LayerUnpacker().unpack(BytesSource(base.archive), into: lower)

        guard mountOverlay("lowerdir=\(lower),upperdir=\(upper),workdir=\(work)", at: mnt, readOnly: false) else { return }
        // The changes a container makes.
        try FS.writeAtomic(mnt + "/etc/passwd", "root\nuser")   // modified (copied up)
        unlink(mnt + "/etc/group")                                // deleted: a whiteout
        try FS.removeTree(mnt + "/var/cache")                     // a directory removed …
        try FS.makeDirectories(mnt + "/var/cache")                // … and made again: opaque
        try FS.writeAtomic(mnt + "/var/cache/fresh", "new")
        try FS.removeTree(mnt + "/gone")                          // a whole directory deleted
        try FS.writeAtomic(mnt + "/added", "hello")
        link(mnt + "/added", mnt + "/added-hardlink")
        symlink("etc/passwd", mnt + "/link")
        let expected = tree(mnt)
        umount2(mnt, 0)

        // The upper dir holds overlay's own forms; the archive holds Docker's.
        let sink = try CollectSink()
        try TreeArchiver(mode: .diff).archive([upper], to: TarWriter(sink))
        let entries = try readAll(BytesSource(sink.bytes)).map(\.0)
        let paths = entries.map(\.path)
        #expect(paths.contains("etc/.wh.group"))
        #expect(paths.contains("gone") == false && paths.contains(".wh.gone"))
        #expect(paths.contains("var/cache/.wh..wh..opq"))
        #expect(entries.first { $0.path == "added-hardlink" }?.kind == .hardlink)
        #expect(entries.allSatisfy { $0.xattrs.keys.allSatisfy { !$0.hasPrefix("trusted.overlay.") } })

        // Unpacked as a layer over the same lower, it gives what the container saw.
        let layer = try tmp.makeDir("layer")
        _ = try LayerUnpacker().unpack(BytesSource(sink.bytes), into: layer)
        guard mountOverlay("lowerdir=\(layer):\(lower)", at: mnt, readOnly: true) else { return }
        defer { umount2(mnt, 0) }
        #expect(tree(mnt) == expected)
        #expect(readText(mnt + "/var/cache/fresh") == "new" && lstatOf(mnt + "/var/cache/a") == nil)

        // The same directory archived twice gives the same bytes.
        let again = try CollectSink()
        try TreeArchiver(mode: .diff).archive([upper], to: TarWriter(again))
        #expect(again.bytes == sink.bytes)
    }

    @Test func mergedArchiveListsWhatTheMountShows() throws {
        let tmp = try TempDir("hako-merged")
        let l1 = try tmp.makeDir("l1"), l2 = try tmp.makeDir("l2"), l3 = try tmp.makeDir("l3")
        let mnt = try tmp.makeDir("mnt")
        var one = TarBuilder()
        one.dir("a/"); one.file("a/f1", "one"); one.file("a/f2", "two")
        one.dir("d/"); one.file("d/x", "x"); one.dir("d/sub/"); one.file("d/sub/y", "y")
        one.file("rm-me", "bye"); one.symlink("s", to: "a/f1")
        var two = TarBuilder()
        two.dir("a/"); two.file("a/.wh.f1"); two.file("a/f3", "three"); two.file(".wh.rm-me")
        two.dir("d/"); two.file("d/from2", "2"); two.file("rm-me-later", "x")
        var three = TarBuilder()
        three.dir("a/"); three.file("a/f1", "again"); three.file(".wh.rm-me-later")
        three.dir("d/"); three.file("d/new", "new"); three.file("d/.wh..wh..opq")
        for (b, dir) in [(one, l1), (two, l2), (three, l3)] { _ = try LayerUnpacker().unpack(BytesSource(b.archive), into: dir) }

        let sink = try CollectSink()
        try TreeArchiver(mode: .merged).archive([l3, l2, l1], to: TarWriter(sink))
        guard mountOverlay("lowerdir=\(l3):\(l2):\(l1)", at: mnt, readOnly: true) else { return }
        defer { umount2(mnt, 0) }
        #expect(try tarTree(sink.bytes) == tree(mnt))
        #expect(try tarTree(sink.bytes).contains("/d/new = new"))
    }
}
