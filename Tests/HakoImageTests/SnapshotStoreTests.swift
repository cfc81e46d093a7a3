import HakoTestSupport
import Testing
import Glibc
import HakoSystem
@testable import HakoImage

/// How snapshots reach the disk: unpacked under a directory that spreads
/// them over the file system, and on disk before they are published.
@Suite(.needsRoot) struct SnapshotStoreTests {
    /// Each snapshot is unpacked in a subdirectory of `<images>/tmp`, which
    /// carries ext4's "top of directory hierarchies" flag (chattr +T).
    @Test func snapshotsAreUnpackedUnderATopOfHierarchiesDirectory() throws {
        let tmp = try TempDir("hako-snapshots")
        let store = try SnapshotStore(images: tmp.path)
        // A file system without inode flags (tmpfs) has nothing to show.
        guard FS.inodeFlags(ofDirectory: store.tempDirectory) != nil else { return }
        var b = TarBuilder()
        b.file("a", "x")
        let prepared = try store.prepare(BytesSource(b.archive))
        let flags = try #require(FS.inodeFlags(ofDirectory: store.tempDirectory))
        #expect(flags & FS.InodeFlags.topDirectory != 0)
        let info = try store.publish(prepared, parent: nil)
        #expect(readText(store.fsPath(info.chainID) + "/a") == "x")
    }

    /// The init layer: the runtime's mount points, unpacked once under a name
    /// that never changes (its archive is the same bytes every time).
    @Test func theInitLayerIsOneSnapshotOfTheRuntimesMountPoints() throws {
        let tmp = try TempDir("hako-snapshots")
        let store = try SnapshotStore(images: tmp.path)
        #expect(try SnapshotStore.initLayerArchive() == SnapshotStore.initLayerArchive())
        let dir = try store.initLayer()
        #expect(try store.initLayer() == dir)
        #expect(try store.list().count == 1)
        for d in ["dev", "etc", "proc", "sys"] {
            var st = stat()
            #expect(stat(dir + "/" + d, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR && st.st_mode & 0o7777 == 0o755 && st.st_uid == 0, "\(d)")
        }
        for f in ["etc/hostname", "etc/hosts", "etc/resolv.conf"] {
            var st = stat()
            #expect(stat(dir + "/" + f, &st) == 0 && st.st_mode & S_IFMT == S_IFREG && st.st_size == 0, "\(f)")
        }
        #expect(try FS.list(dir).sorted() == ["dev", "etc", "proc", "sys"])
        #expect(try FS.list(dir + "/etc").sorted() == ["hostname", "hosts", "resolv.conf"])
    }

    /// A layer's content is written back (no delayed allocation left, as
    /// FIEMAP shows on ext4) by the time `prepare` returns, before `publish`
    /// renames it into place: a crash never leaves a published snapshot
    /// whose files are empty.
    @Test func preparedContentIsOnDiskBeforePublishing() throws {
        let tmp = try TempDir("hako-snapshots")
        let store = try SnapshotStore(images: tmp.path)
        // The control: a file just written, not synced, still has delayed
        // allocation. Where it has not (no delalloc, no FIEMAP, or someone
        // synced meanwhile) this file system cannot show the difference.
        let control = tmp.sub("control")
        try FS.writeAtomic(control, [UInt8](repeating: 7, count: 256 << 10), durable: false)
        guard pendingAllocation(control) == true else { return }

        var b = TarBuilder()
        for i in 0..<8 { b.file("f\(i)", String(repeating: "d", count: 200_000 + i)) }
        let prepared = try store.prepare(BytesSource(b.archive))
        let fs = prepared.temp.path + "/fs"
        for i in 0..<8 {
            #expect(pendingAllocation(fs + "/f\(i)") == false, "f\(i) still has delayed allocation")
        }
        _ = try store.publish(prepared, parent: nil)
    }

    /// Whether any extent of the file is still delayed allocation
    /// (FIEMAP_EXTENT_DELALLOC: data only in the page cache); nil when the
    /// file system has no FIEMAP.
    private func pendingAllocation(_ path: String) -> Bool? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // struct fiemap (32 bytes) followed by 32 struct fiemap_extent (56 bytes each).
        let extents = 32
        var buffer = [UInt64](repeating: 0, count: (32 + 56 * extents) / 8)
        buffer[1] = UInt64.max                        // fm_length
        let ok = buffer.withUnsafeMutableBytes { raw -> Bool in
            raw.storeBytes(of: UInt32(0), toByteOffset: 16, as: UInt32.self)              // fm_flags: no FIEMAP_FLAG_SYNC
            raw.storeBytes(of: UInt32(extents), toByteOffset: 24, as: UInt32.self)        // fm_extent_count
            let fiemap: UInt = (3 << 30) | (32 << 16) | (0x66 << 8) | 11                  // FS_IOC_FIEMAP
            guard let base = raw.baseAddress else { return false }
            return ioctl(fd, fiemap, base) == 0
        }
        guard ok else { return nil }
        return buffer.withUnsafeBytes { raw -> Bool in
            let mapped = Int(raw.load(fromByteOffset: 20, as: UInt32.self))               // fm_mapped_extents
            for i in 0..<min(mapped, extents) {
                let flags = raw.load(fromByteOffset: 32 + 56 * i + 40, as: UInt32.self)   // fe_flags
                if flags & 0x4 != 0 { return true }                                       // FIEMAP_EXTENT_DELALLOC
            }
            return false
        }
    }
}
