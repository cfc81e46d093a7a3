#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import Testing

/// What the daemons' and `hako system service`'s idle trim lets go of: clean
/// read-only file pages only, never a private copy of a page or anything writable.
@Suite struct ResidentMemoryTests {
    /// Rss in kB of the mapping that starts at `address`.
    static func rss(_ address: UnsafeMutableRawPointer) throws -> Int {
        let start = UInt(bitPattern: address)
        let smaps = try FS.readString("/proc/self/smaps")
        return try #require(ResidentMemory.mappings(smaps).first { $0.start == start }).rss / 1024
    }

    @Test func readsSmaps() {
        let smaps = """
        00400000-01afa000 r-xp 00000000 fe:00 5309204                            /usr/bin/hako
        Rss:                6848 kB
        Private_Dirty:         0 kB
        Anonymous:             0 kB
        01bc7000-01e92000 rw-p 017c6000 fe:00 5309204                            /usr/bin/hako
        Rss:                2284 kB
        Private_Dirty:        52 kB
        Anonymous:            52 kB
        7f0000000000-7f0000004000 r--p 001d4000 fe:00 12 /usr/lib/x86_64-linux-gnu/libc.so.6
        Rss:                  16 kB
        Private_Dirty:        16 kB
        Anonymous:            16 kB
        7f0000010000-7f0000020000 r--p 00000000 fe:00 13 /usr/lib/with space/lib.so
        Rss:                  64 kB
        Shared_Dirty:          4 kB
        Anonymous:             0 kB
        7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
        Rss:                  40 kB
        """
        let m = ResidentMemory.mappings(smaps)
        #expect(m.map(\.path) == ["/usr/bin/hako", "/usr/bin/hako", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/with space/lib.so", "[stack]"])
        #expect(m.map(\.releasable) == [true, false, false, false, false], "only clean read-only file pages")
        #expect(m[0].rss == 6848 * 1024 && m[0].start == 0x400000 && m[0].end == 0x1afa000)
        #expect(m[3].dirty == 4096)
    }

    @Test func dropsCleanReadOnlyFilePagesAndKeepsPrivateCopies() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hako-trim-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let size = 256 * 1024
        try Data(repeating: 7, count: size).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        let readOnly = try #require(mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0))
        let copied = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0))
        defer { munmap(readOnly, size); munmap(copied, size) }
        #expect(readOnly != MAP_FAILED && copied != MAP_FAILED)
        var sum = 0
        for i in stride(from: 0, to: size, by: 4096) {
            sum += Int(readOnly.load(fromByteOffset: i, as: UInt8.self))
            copied.storeBytes(of: 9, toByteOffset: i, as: UInt8.self)
        }
        #expect(sum == 7 * (size / 4096))
        #expect(try Self.rss(readOnly) == size / 1024)

        #expect(ResidentMemory.release() >= size, "the resident bytes unmapped: this mapping's and the test binary's own code")
        #expect(try Self.rss(readOnly) == 0, "clean read-only file pages go back to the page cache")
        #expect(try Self.rss(copied) == size / 1024, "written private pages stay")
        // What is read again is the file's content.
        #expect(readOnly.load(fromByteOffset: 4096, as: UInt8.self) == 7)
        #expect(copied.load(fromByteOffset: 4096, as: UInt8.self) == 9)
    }
}
