import HakoSystem

/// A streaming tar reader over any `ByteSource`.
///
/// Reads ustar, GNU (long names and link targets: `L`/`K`, base-256 numbers)
/// and PAX (`x` records: path, linkpath, size, uid, gid, uname, gname, mtime,
/// `SCHILY.xattr.*`; global `g` headers are skipped). Memory stays bounded:
/// one 64 KiB buffer, plus metadata records of at most `maxMetadataSize`.
/// Every malformed input is a thrown `ImageError.malformedArchive` or
/// `.unsupportedEntry`, never a trap.
///
///     let reader = TarReader(source)
///     while let entry = try reader.next() {
///         while true { let n = try reader.read(into: buf); if n == 0 { break } … }
///     }
public final class TarReader {
    /// Largest PAX header or GNU long name accepted.
    public static let maxMetadataSize = 1 << 20

    private let source: any ByteSource
    private let buffer: UnsafeMutableRawBufferPointer
    private var bufferStart = 0
    private var bufferEnd = 0
    private let header: UnsafeMutableRawBufferPointer
    /// Content bytes of the current entry not yet read, and the padding after them.
    private var remaining: Int64 = 0
    private var padding: Int64 = 0
    private var currentPath = ""
    private var ended = false
    /// Bytes of the archive consumed so far.
    public private(set) var position: Int64 = 0

    public init(_ source: any ByteSource) {
        self.source = source
        buffer = .allocate(byteCount: 65536, alignment: 16)
        header = .allocate(byteCount: 512, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        header.deallocate()
    }

    // MARK: buffered input

    /// Bytes available in the buffer, refilling it when empty; 0 at end of stream.
    private func available() throws -> Int {
        if bufferStart < bufferEnd { return bufferEnd - bufferStart }
        bufferStart = 0
        bufferEnd = try source.read(into: buffer)
        return bufferEnd
    }

    private func consume(into target: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(try available(), target.count)
        guard n > 0, let dst = target.baseAddress, let src = buffer.baseAddress else { return 0 }
        dst.copyMemory(from: src + bufferStart, byteCount: n)
        bufferStart += n
        position += Int64(n)
        return n
    }

    /// Reads one 512-byte block into `header`: false at a clean end of stream.
    private func readBlock() throws -> Bool {
        var filled = 0
        while filled < 512 {
            let n = try consume(into: UnsafeMutableRawBufferPointer(rebasing: header[filled...]))
            if n == 0 {
                if filled == 0 { return false }
                throw ImageError.malformedArchive("truncated archive: partial header block at offset \(position)")
            }
            filled += n
        }
        return true
    }

    private func skip(_ count: Int64, what: @autoclosure () -> String) throws {
        var left = count
        while left > 0 {
            let n = min(Int64(try available()), left)
            if n == 0 { throw ImageError.malformedArchive("truncated archive: \(what()) ends early") }
            bufferStart += Int(n)
            position += n
            left -= n
        }
    }

    /// The content of a metadata member (PAX header, GNU long name), with its padding skipped.
    private func readMetadata(size: Int64, kind: String) throws -> [UInt8] {
        guard size <= Int64(TarReader.maxMetadataSize) else {
            throw ImageError.malformedArchive("\(kind) of \(size) bytes exceeds the \(TarReader.maxMetadataSize)-byte limit")
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        var filled = 0
        while filled < out.count {
            let n = try out.withUnsafeMutableBytes { p in
                try consume(into: UnsafeMutableRawBufferPointer(rebasing: p[filled...]))
            }
            if n == 0 { throw ImageError.malformedArchive("truncated archive: \(kind) ends early") }
            filled += n
        }
        try skip(TarReader.padding(size), what: kind)
        return out
    }

    private static func padding(_ size: Int64) -> Int64 { (512 - size % 512) % 512 }

    // MARK: entries

    /// Reads the current entry's content; 0 when it is all read.
    public func read(into target: UnsafeMutableRawBufferPointer) throws -> Int {
        guard remaining > 0, target.count > 0 else { return 0 }
        let limited = UnsafeMutableRawBufferPointer(rebasing: target[0..<Int(min(Int64(target.count), remaining))])
        let n = try consume(into: limited)
        if n == 0 { throw ImageError.malformedArchive("truncated archive: content of \"\(currentPath)\" ends early") }
        remaining -= Int64(n)
        return n
    }

    /// The next entry, skipping whatever is left of the current one; nil after
    /// the end-of-archive marker.
    public func next() throws -> TarEntry? {
        if ended { return nil }
        try skip(remaining, what: "content of \"\(currentPath)\"")
        try skip(padding, what: "content of \"\(currentPath)\"")
        remaining = 0
        padding = 0

        var pax = PaxRecords()
        var longName: String?
        var longLink: String?
        while true {
            let headerOffset = position
            guard try readBlock() else {
                throw ImageError.malformedArchive("truncated archive: missing end-of-archive marker")
            }
            let block = UnsafeRawBufferPointer(header)
            if block.allSatisfy({ $0 == 0 }) {
                // End of archive: two zero blocks (one followed by the end of the stream is accepted).
                if try readBlock(), !UnsafeRawBufferPointer(header).allSatisfy({ $0 == 0 }) {
                    throw ImageError.malformedArchive("data after an end-of-archive block at offset \(headerOffset)")
                }
                ended = true
                return nil
            }
            guard try TarHeaderField.checksumMatches(block) else {
                throw ImageError.malformedArchive("header checksum mismatch at offset \(headerOffset)")
            }
            let size = try TarHeaderField.number(block, 124, 12, field: "size")
            guard size >= 0 else { throw ImageError.malformedArchive("negative size in header at offset \(headerOffset)") }
            let type = block[156]
            switch type {
            case UInt8(ascii: "x"):
                pax = try PaxRecords.parse(readMetadata(size: size, kind: "PAX header"))
                continue
            case UInt8(ascii: "g"):
                // Global PAX records would apply to every later entry; hako ignores them.
                try skip(size, what: "global PAX header")
                try skip(TarReader.padding(size), what: "global PAX header")
                continue
            case UInt8(ascii: "L"):
                longName = TarReader.cString(try readMetadata(size: size, kind: "GNU long name"))
                continue
            case UInt8(ascii: "K"):
                longLink = TarReader.cString(try readMetadata(size: size, kind: "GNU long link name"))
                continue
            case UInt8(ascii: "V"):
                // GNU volume label: not a file.
                try skip(size, what: "volume label")
                try skip(TarReader.padding(size), what: "volume label")
                pax = PaxRecords(); longName = nil; longLink = nil
                continue
            default:
                break
            }
            var entry = try makeEntry(block, type: type, size: size, pax: pax, longName: longName, longLink: longLink)
            let dataSize = entry.kind == .regular || type == UInt8(ascii: "D") ? (pax.size ?? size) : 0
            if entry.kind == .regular { entry.size = dataSize }
            currentPath = entry.path
            remaining = dataSize
            padding = TarReader.padding(dataSize)
            return entry
        }
    }

    private func makeEntry(_ block: UnsafeRawBufferPointer, type: UInt8, size: Int64, pax: PaxRecords,
                           longName: String?, longLink: String?) throws -> TarEntry {
        let isPosix = TarReader.matches(block, 257, [0x75, 0x73, 0x74, 0x61, 0x72, 0x00])       // "ustar\0"
        let isGNU = TarReader.matches(block, 257, [0x75, 0x73, 0x74, 0x61, 0x72, 0x20, 0x20, 0x00]) // "ustar  \0"
        var name = TarHeaderField.string(block, 0, 100)
        if isPosix {
            let prefix = TarHeaderField.string(block, 345, 155)
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        let path = pax.path ?? longName ?? name
        guard !path.isEmpty else { throw ImageError.malformedArchive("entry with an empty name at offset \(position - 512)") }

        let kind: TarEntry.Kind
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"):
            kind = (type == 0 || !(isPosix || isGNU)) && path.hasSuffix("/") ? .directory : .regular
        case UInt8(ascii: "1"): kind = .hardlink
        case UInt8(ascii: "2"): kind = .symlink
        case UInt8(ascii: "3"): kind = .characterDevice
        case UInt8(ascii: "4"): kind = .blockDevice
        case UInt8(ascii: "5"), UInt8(ascii: "D"): kind = .directory
        case UInt8(ascii: "6"): kind = .fifo
        case UInt8(ascii: "S"):
            throw ImageError.unsupportedEntry(path: path, reason: "GNU sparse files are not supported")
        case UInt8(ascii: "M"), UInt8(ascii: "N"):
            throw ImageError.unsupportedEntry(path: path, reason: "multi-volume and old GNU long-name members are not supported")
        default:
            let shown = type >= 0x20 && type < 0x7f ? String(UnicodeScalar(type)) : "\\(\(type))"
            throw ImageError.unsupportedEntry(path: path, reason: "unknown tar type flag '\(shown)'")
        }
        if pax.sparse {
            throw ImageError.unsupportedEntry(path: path, reason: "GNU sparse files are not supported")
        }
        func id(_ value: Int64, _ field: String) throws -> UInt32 {
            guard value >= 0, value < Int64(UInt32.max) else {
                throw ImageError.malformedArchive("\(field) \(value) of \"\(path)\" is out of range")
            }
            return UInt32(value)
        }
        let hasDevice = isPosix || isGNU
        return TarEntry(
            path: path,
            kind: kind,
            size: 0,
            mode: UInt32(truncatingIfNeeded: try TarHeaderField.number(block, 100, 8, field: "mode")) & 0o7777,
            uid: try id(try pax.uid ?? TarHeaderField.number(block, 108, 8, field: "uid"), "uid"),
            gid: try id(try pax.gid ?? TarHeaderField.number(block, 116, 8, field: "gid"), "gid"),
            userName: pax.userName ?? TarHeaderField.string(block, 265, 32),
            groupName: pax.groupName ?? TarHeaderField.string(block, 297, 32),
            modified: try pax.modified ?? Timestamp(seconds: TarHeaderField.number(block, 136, 12, field: "mtime")),
            linkTarget: pax.linkPath ?? longLink ?? TarHeaderField.string(block, 157, 100),
            deviceMajor: hasDevice ? try id(try TarHeaderField.number(block, 329, 8, field: "devmajor"), "devmajor") : 0,
            deviceMinor: hasDevice ? try id(try TarHeaderField.number(block, 337, 8, field: "devminor"), "devminor") : 0,
            xattrs: pax.xattrs)
    }

    private static func matches(_ block: UnsafeRawBufferPointer, _ offset: Int, _ bytes: [UInt8]) -> Bool {
        for (i, b) in bytes.enumerated() where block[offset + i] != b { return false }
        return true
    }

    private static func cString(_ bytes: [UInt8]) -> String {
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[0..<end], as: UTF8.self)
    }
}
