import Foundation
import Glibc
import CHakoShim
import HakoSystem
import HakoImage

/// A temporary directory, removed (with everything in it) when dropped.
public final class TempDir {
    public let path: String

    public init(_ label: String = "hako-image-test") throws {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw SystemError("mkdtemp") }
        path = String(cString: p)
    }

    deinit { try? FS.removeTree(path) }

    public func sub(_ name: String) -> String { path + "/" + name }

    /// Makes `name` (and parents) inside the temp dir; returns its path.
    @discardableResult
    public func makeDir(_ name: String) throws -> String {
        try FS.makeDirectories(sub(name))
        return sub(name)
    }
}

/// Runs a program (tests only: fixtures are made with Debian's tar and gzip).
@discardableResult
public func run(_ args: [String], stdin: [UInt8]? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: args[0])
    process.arguments = Array(args.dropFirst())
    let out = Pipe()
    process.standardOutput = out
    process.standardError = out
    let input = Pipe()
    if stdin != nil { process.standardInput = input }
    try process.run()
    if let stdin {
        input.fileHandleForWriting.write(Data(stdin))
        try input.fileHandleForWriting.close()
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard process.terminationStatus == 0 else {
        throw HakoError(.failed, "\(args.joined(separator: " ")) failed (\(process.terminationStatus)): \(text)")
    }
    return text
}

/// lstat of a path; nil when absent.
public func lstatOf(_ path: String) -> stat? {
    var st = stat()
    return lstat(path, &st) == 0 ? st : nil
}

public func fileType(_ path: String) -> mode_t? { lstatOf(path).map { $0.st_mode & S_IFMT } }

public func readText(_ path: String) -> String? {
    (try? FS.readFile(path)).map { String(decoding: $0, as: UTF8.self) }
}

/// Names in a directory, sorted.
public func names(_ path: String) -> [String] { ((try? FS.list(path)) ?? []).sorted() }

public func xattr(_ path: String, _ name: String) -> String? {
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = hako_lgetxattr(path, name, &buffer, buffer.count)
    return n < 0 ? nil : String(decoding: buffer[0..<n], as: UTF8.self)
}

/// Every entry a tar reader yields, with file contents.
public func readAll(_ source: any ByteSource) throws -> [(TarEntry, [UInt8])] {
    let (_, plain) = try Compression.decompressing(source)
    let reader = TarReader(plain)
    var out: [(TarEntry, [UInt8])] = []
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
    defer { buffer.deallocate() }
    while let entry = try reader.next() {
        var data: [UInt8] = []
        while true {
            let n = try reader.read(into: buffer)
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        out.append((entry, data))
    }
    return out
}

public func errorText(_ body: () throws -> Void) -> String? {
    do { try body(); return nil } catch { return String(describing: error) }
}

/// Builds ustar archives byte by byte: lets tests write what GNU tar never
/// would ("..", absolute names, whiteouts, broken headers).
public struct TarBuilder {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public enum TypeFlag: UInt8 {
        case regular = 0x30, hardlink = 0x31, symlink = 0x32, char = 0x33, block = 0x34
        case directory = 0x35, fifo = 0x36, pax = 0x78, globalPax = 0x67, longName = 0x4c, longLink = 0x4b
    }

    public static func header(name: String, type: UInt8, size: Int, mode: Int = 0o644, uid: Int = 0, gid: Int = 0,
                       mtime: Int = 1_600_000_000, link: String = "", major: Int = 0, minor: Int = 0) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ offset: Int, _ length: Int) {
            for (i, b) in s.utf8.prefix(length).enumerated() { h[offset + i] = b }
        }
        func octal(_ v: Int, _ offset: Int, _ length: Int) {
            let s = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, length - 1 - s.count)) + s, offset, length - 1)
        }
        put(name, 0, 100)
        octal(mode, 100, 8); octal(uid, 108, 8); octal(gid, 116, 8)
        octal(size, 124, 12); octal(mtime, 136, 12)
        h[156] = type
        put(link, 157, 100)
        put("ustar\0", 257, 6); put("00", 263, 2)
        put("root", 265, 32); put("root", 297, 32)
        octal(major, 329, 8); octal(minor, 337, 8)
        fixChecksum(&h)
        return h
    }

    public static func fixChecksum(_ h: inout [UInt8]) {
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int($1) }
        let s = String(sum, radix: 8)
        let field = String(repeating: "0", count: max(0, 6 - s.count)) + s
        for (i, b) in field.utf8.enumerated() { h[148 + i] = b }
        h[154] = 0
        h[155] = 0x20
    }

    public mutating func appendRaw(_ header: [UInt8], content: [UInt8] = []) {
        bytes += header
        bytes += content
        bytes += [UInt8](repeating: 0, count: (512 - content.count % 512) % 512)
    }

    public mutating func file(_ name: String, _ content: String = "", mode: Int = 0o644, uid: Int = 0, gid: Int = 0,
                       mtime: Int = 1_600_000_000) {
        let data = Array(content.utf8)
        appendRaw(TarBuilder.header(name: name, type: TypeFlag.regular.rawValue, size: data.count, mode: mode,
                                    uid: uid, gid: gid, mtime: mtime), content: data)
    }

    public mutating func dir(_ name: String, mode: Int = 0o755, mtime: Int = 1_600_000_000) {
        appendRaw(TarBuilder.header(name: name, type: TypeFlag.directory.rawValue, size: 0, mode: mode, mtime: mtime))
    }

    public mutating func symlink(_ name: String, to target: String) {
        appendRaw(TarBuilder.header(name: name, type: TypeFlag.symlink.rawValue, size: 0, mode: 0o777, link: target))
    }

    public mutating func hardlink(_ name: String, to target: String) {
        appendRaw(TarBuilder.header(name: name, type: TypeFlag.hardlink.rawValue, size: 0, link: target))
    }

    public mutating func device(_ name: String, char: Bool = true, major: Int, minor: Int) {
        appendRaw(TarBuilder.header(name: name, type: (char ? TypeFlag.char : TypeFlag.block).rawValue, size: 0,
                                    mode: 0o666, major: major, minor: minor))
    }

    /// A PAX extended header applying to the next entry.
    public mutating func pax(_ records: [(String, [UInt8])]) {
        var data: [UInt8] = []
        for (key, value) in records {
            let body = Array(" \(key)=".utf8) + value + [0x0a]
            var length = body.count + 1
            while String(length).utf8.count + body.count != length { length += 1 }
            data += Array(String(length).utf8) + body
        }
        appendRaw(TarBuilder.header(name: "PaxHeaders/x", type: TypeFlag.pax.rawValue, size: data.count), content: data)
    }

    public mutating func finish() { bytes += [UInt8](repeating: 0, count: 1024) }

    public var archive: [UInt8] {
        var copy = self
        copy.finish()
        return copy.bytes
    }
}

/// Collects written bytes.
public final class CollectSink: ByteSink {
    public private(set) var bytes: [UInt8] = []
    public init() throws {}
    public func write(_ b: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: b) }
    public func finish() throws {}
}
