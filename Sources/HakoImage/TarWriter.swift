#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// Writes tar archives: ustar headers, with a PAX extended header before an
/// entry whose name, link target, ids or size do not fit ustar's fields, or
/// that has extended attributes (`SCHILY.xattr.*`, as GNU tar and Docker
/// write them). Output is deterministic for the same entries.
///
///     let tar = TarWriter(sink)
///     try tar.append(entry)            // then exactly entry.size content bytes:
///     try tar.writeContent(bytes)
///     try tar.finish()                 // two zero blocks, then sink.finish()
public final class TarWriter {
    private let sink: any ByteSink
    private var contentLeft: Int64 = 0
    private var padding: Int = 0
    private var finished = false
    private static let zeros = [UInt8](repeating: 0, count: 1024)

    public init(_ sink: any ByteSink) { self.sink = sink }

    /// Writes an entry's header(s). A regular file's content follows through
    /// `writeContent` or `copyContent`; directory names get a trailing "/".
    public func append(_ entry: TarEntry) throws {
        guard contentLeft == 0 else {
            throw ImageError.malformedArchive("tar: \(contentLeft) content bytes missing before the next entry")
        }
        var name = entry.path
        if entry.kind == .directory && !name.hasSuffix("/") { name += "/" }
        let size = entry.kind == .regular ? entry.size : 0
        var pax: [(String, [UInt8])] = []
        let (prefix, short) = TarWriter.split(name)
        if short == nil { pax.append(("path", Array(name.utf8))) }
        if entry.linkTarget.utf8.count > 100 { pax.append(("linkpath", Array(entry.linkTarget.utf8))) }
        if entry.uid > 0o7777777 { pax.append(("uid", Array(String(entry.uid).utf8))) }
        if entry.gid > 0o7777777 { pax.append(("gid", Array(String(entry.gid).utf8))) }
        if size > 0o77777777777 { pax.append(("size", Array(String(size).utf8))) }
        if entry.userName.utf8.count > 32 { pax.append(("uname", Array(entry.userName.utf8))) }
        if entry.groupName.utf8.count > 32 { pax.append(("gname", Array(entry.groupName.utf8))) }
        if entry.modified.seconds < 0 || entry.modified.seconds > 0o77777777777 {
            pax.append(("mtime", Array(String(entry.modified.seconds).utf8)))
        }
        for (key, value) in entry.xattrs.sorted(by: { $0.key < $1.key }) { pax.append(("SCHILY.xattr." + key, value)) }
        if !pax.isEmpty {
            let records = TarWriter.paxRecords(pax)
            let paxName = "PaxHeaders.0/" + String((short ?? name).suffix(80))
            try writeBlock(TarWriter.header(name: paxName, prefix: "", type: UInt8(ascii: "x"), size: Int64(records.count),
                                            mode: 0o644, uid: 0, gid: 0, mtime: 0, link: "", uname: "", gname: "", major: 0, minor: 0))
            try sink.write(records)
            try pad(records.count)
        }
        let type: UInt8
        switch entry.kind {
        case .regular: type = UInt8(ascii: "0")
        case .hardlink: type = UInt8(ascii: "1")
        case .symlink: type = UInt8(ascii: "2")
        case .characterDevice: type = UInt8(ascii: "3")
        case .blockDevice: type = UInt8(ascii: "4")
        case .directory: type = UInt8(ascii: "5")
        case .fifo: type = UInt8(ascii: "6")
        }
        try writeBlock(TarWriter.header(
            name: short ?? String(name.suffix(100)), prefix: short == nil ? "" : prefix, type: type,
            size: min(size, 0o77777777777), mode: entry.mode & 0o7777, uid: min(entry.uid, 0o7777777),
            gid: min(entry.gid, 0o7777777), mtime: max(0, min(entry.modified.seconds, 0o77777777777)),
            link: String(entry.linkTarget.utf8.count > 100 ? "" : entry.linkTarget),
            uname: String(entry.userName.prefix(32)), gname: String(entry.groupName.prefix(32)),
            major: entry.deviceMajor, minor: entry.deviceMinor))
        contentLeft = size
        padding = Int((512 - size % 512) % 512)
        if size == 0 { padding = 0 }
    }

    /// Content of the current regular file.
    public func writeContent(_ bytes: UnsafeRawBufferPointer) throws {
        guard Int64(bytes.count) <= contentLeft else {
            throw ImageError.malformedArchive("tar: more content than the entry's size")
        }
        try sink.write(bytes)
        contentLeft -= Int64(bytes.count)
        if contentLeft == 0 { try pad(0, count: padding) }
    }

    public func writeContent(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeContent($0) }
    }

    /// Copies the current regular file's content from an open file; a file
    /// that shrank meanwhile is an error (the header already promised its size).
    public func copyContent(from fd: FileDescriptor, buffer: UnsafeMutableRawBufferPointer) throws {
        while contentLeft > 0 {
            let want = Int(min(Int64(buffer.count), contentLeft))
            let n = try sys("read") { read(fd.rawValue, buffer.baseAddress, want) }
            if n == 0 { throw ImageError.entryFailed(path: "-", reason: "file shrank while it was archived") }
            try writeContent(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// The end-of-archive marker; flushes the sink.
    public func finish() throws {
        guard !finished else { return }
        guard contentLeft == 0 else { throw ImageError.malformedArchive("tar: the last entry's content is incomplete") }
        finished = true
        try TarWriter.zeros.withUnsafeBytes { try sink.write($0) }
        try sink.finish()
    }

    private func writeBlock(_ block: [UInt8]) throws { try sink.write(block) }

    private func pad(_ size: Int, count: Int? = nil) throws {
        let n = count ?? (512 - size % 512) % 512
        guard n > 0 else { return }
        try TarWriter.zeros.withUnsafeBytes { try sink.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    /// ustar splits a long name at a "/" into prefix (≤155) and name (≤100);
    /// nil when no split fits (a PAX path record is needed).
    static func split(_ name: String) -> (String, String?) {
        let bytes = Array(name.utf8)
        if bytes.count <= 100 { return ("", name) }
        guard bytes.count <= 256 else { return ("", nil) }
        for i in stride(from: min(bytes.count - 1, 155), through: 1, by: -1) where bytes[i] == UInt8(ascii: "/") {
            let rest = bytes.count - i - 1
            if rest > 0 && rest <= 100 {
                return (String(decoding: bytes[0..<i], as: UTF8.self), String(decoding: bytes[(i + 1)...], as: UTF8.self))
            }
        }
        return ("", nil)
    }

    /// PAX records: "<length> <key>=<value>\n", the length counting itself.
    static func paxRecords(_ records: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in records {
            let body = Array(" \(key)=".utf8) + value + [0x0a]
            var length = body.count + 1
            while String(length).utf8.count + body.count != length { length += 1 }
            out += Array(String(length).utf8) + body
        }
        return out
    }

    static func header(name: String, prefix: String, type: UInt8, size: Int64, mode: UInt32, uid: UInt32, gid: UInt32,
                       mtime: Int64, link: String, uname: String, gname: String, major: UInt32, minor: UInt32) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ offset: Int, _ length: Int) {
            for (i, b) in s.utf8.prefix(length).enumerated() { h[offset + i] = b }
        }
        func octal(_ v: Int64, _ offset: Int, _ length: Int) {
            let s = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, length - 1 - s.count)) + s, offset, length - 1)
        }
        put(name, 0, 100)
        octal(Int64(mode), 100, 8)
        octal(Int64(uid), 108, 8)
        octal(Int64(gid), 116, 8)
        octal(size, 124, 12)
        octal(mtime, 136, 12)
        h[156] = type
        put(link, 157, 100)
        put("ustar\0", 257, 6)
        put("00", 263, 2)
        put(uname, 265, 32)
        put(gname, 297, 32)
        if type == UInt8(ascii: "3") || type == UInt8(ascii: "4") {
            octal(Int64(major), 329, 8)
            octal(Int64(minor), 337, 8)
        }
        put(prefix, 345, 155)
        // Checksum: the sum of the header with the checksum field as spaces.
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int($1) }
        let s = String(sum, radix: 8)
        put(String(repeating: "0", count: max(0, 6 - s.count)) + s, 148, 6)
        h[154] = 0
        h[155] = 0x20
        return h
    }
}
