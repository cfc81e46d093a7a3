#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// A forward-only stream of bytes: a file, stdin, a pipe, a decompressor.
/// Everything that reads archives works over this so no layer is ever held
/// in memory whole.
public protocol ByteSource: AnyObject {
    /// Reads at most `buffer.count` bytes into `buffer`; 0 means end of stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension ByteSource {
    /// Reads and discards everything up to the end; returns the byte count.
    @discardableResult
    public func drain() throws -> Int64 {
        var total: Int64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = try read(into: buffer)
            if n == 0 { return total }
            total += Int64(n)
        }
    }

    /// Reads up to `count` bytes, fewer only at the end of the stream.
    public func read(upTo count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = try out.withUnsafeMutableBytes { p in
                try read(into: UnsafeMutableRawBufferPointer(rebasing: p[filled...]))
            }
            if n == 0 { break }
            filled += n
        }
        out.removeSubrange(filled...)
        return out
    }
}

/// Reads a file descriptor (a file, stdin, a pipe).
public final class FileSource: ByteSource {
    public let fd: FileDescriptor

    public init(_ fd: FileDescriptor) { self.fd = fd }

    /// Opens `path` for reading; "-" is a duplicate of stdin.
    public static func open(_ path: String) throws -> FileSource {
        if path == "-" {
            let fd = try sys("dup", "stdin") { fcntl(0, F_DUPFD_CLOEXEC, 0) }
            return FileSource(FileDescriptor(fd))
        }
        return FileSource(try FileDescriptor.open(path, O_RDONLY))
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        return try sys("read") { Glibc.read(fd.rawValue, base, buffer.count) }
    }
}

/// An in-memory source (manifests, configs, tests).
public final class BytesSource: ByteSource {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + n)]))
        }
        offset += n
        return n
    }
}

/// Replays a few already-read bytes (a peeked magic number), then the rest.
final class PrefixedSource: ByteSource {
    private var prefix: [UInt8]
    private var offset = 0
    private let rest: any ByteSource

    init(prefix: [UInt8], rest: any ByteSource) {
        self.prefix = prefix
        self.rest = rest
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if offset < prefix.count {
            let n = min(buffer.count, prefix.count - offset)
            prefix.withUnsafeBytes { src in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + n)]))
            }
            offset += n
            return n
        }
        return try rest.read(into: buffer)
    }
}

/// Hashes (SHA-256) and counts every byte that passes through: DiffIDs and
/// blob digests are computed on the way, in the one pass that also unpacks.
public final class DigestingSource: ByteSource {
    private let source: any ByteSource
    private let hasher: SHA256Hasher
    public private(set) var count: Int64 = 0

    public init(_ source: any ByteSource) throws {
        self.source = source
        self.hasher = try SHA256Hasher()
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try source.read(into: buffer)
        if n > 0 {
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            count += Int64(n)
        }
        return n
    }

    /// The digest of everything read so far. Call once, at the end.
    public func finalize() throws -> Digest { try hasher.finalize() }
}

/// Hands every byte read to `sink` as well (used to store a layer blob
/// while the same stream is unpacked).
public final class TeeSource: ByteSource {
    private let source: any ByteSource
    private let sink: (UnsafeRawBufferPointer) throws -> Void

    public init(_ source: any ByteSource, sink: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.source = source
        self.sink = sink
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try source.read(into: buffer)
        if n > 0 { try sink(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }
}
