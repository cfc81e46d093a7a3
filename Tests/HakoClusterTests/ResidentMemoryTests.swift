import Foundation
@testable import HakoCluster
import Testing

/// What the daemons' trim lets go of: clean read-only file pages only, never
/// a private copy of a page or anything writable.
@Suite struct ResidentMemoryTests {
    /// Rss in kB of the mapping that starts at `address`.
    static func rss(_ address: UnsafeMutableRawPointer) throws -> Int {
        let start = String(UInt(bitPattern: address), radix: 16) + "-"
        var inside = false
        // /proc files report size 0: read to the end.
        let smaps = String(decoding: try #require(FileHandle(forReadingAtPath: "/proc/self/smaps")).readToEnd() ?? Data(), as: UTF8.self)
        for line in smaps.split(separator: "\n") {
            if line.first?.isHexDigit == true && line.contains("-") && !line.hasSuffix(":") {
                inside = line.hasPrefix(start)
            } else if inside, line.hasPrefix("Rss:") {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? -1
            }
        }
        return -1
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

        #expect(ResidentMemory.trimStartupCode() >= size)
        #expect(try Self.rss(readOnly) == 0, "clean read-only file pages go back to the page cache")
        #expect(try Self.rss(copied) == size / 1024, "written private pages stay")
        // What is read again is the file's content.
        #expect(readOnly.load(fromByteOffset: 4096, as: UInt8.self) == 7)
        #expect(copied.load(fromByteOffset: 4096, as: UInt8.self) == 9)
    }
}
