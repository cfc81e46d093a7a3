#if canImport(Glibc)
import Glibc
#endif
import CZlib
import HakoSystem

/// Where written bytes go: a file, a compressor, a hash, a blob.
public protocol ByteSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Flushes whatever is buffered (a compressor's last block); idempotent.
    func finish() throws
}

extension ByteSink {
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
}

extension BlobWriter: ByteSink {
    public func finish() throws {}
}

/// Collects what is written, in memory (a small archive built whole).
public final class BytesSink: ByteSink {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public func write(_ buffer: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: buffer) }

    public func finish() throws {}
}

/// Writes to a file descriptor (a file, stdout, a pipe).
public final class FileSink: ByteSink {
    public let fd: FileDescriptor
    public private(set) var count: Int64 = 0

    public init(_ fd: FileDescriptor) { self.fd = fd }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try fd.write(bytes)
        count += Int64(bytes.count)
    }

    public func finish() throws {}
}

/// Hashes (SHA-256) and counts what passes on to the next sink.
public final class DigestingSink: ByteSink {
    private let next: (any ByteSink)?
    private let hasher: SHA256Hasher
    public private(set) var count: Int64 = 0

    public init(_ next: (any ByteSink)?) throws {
        self.next = next
        hasher = try SHA256Hasher()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        hasher.update(bytes)
        count += Int64(bytes.count)
        try next?.write(bytes)
    }

    public func finish() throws { try next?.finish() }

    /// The digest of everything written. Call once.
    public func digest() throws -> Digest { try hasher.finalize() }
}

/// Compresses with gzip (zlib's deflate) into the next sink.
public final class GzipSink: ByteSink {
    private let next: any ByteSink
    private let stream: UnsafeMutablePointer<z_stream>
    private let output: UnsafeMutableRawBufferPointer
    private var finished = false

    /// `level`: 1 (fastest) to 9 (smallest); zlib's default is 6.
    public init(_ next: any ByteSink, level: Int32 = 6) throws {
        self.next = next
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        output = .allocate(byteCount: 65536, alignment: 16)
        // 15 + 16: maximum window, gzip wrapper; memory level 8 as gzip(1).
        let r = deflateInit2_(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard r == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            output.deallocate()
            throw ImageError.corrupt("cannot initialise zlib's deflate (error \(r))")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        output.deallocate()
    }

    private func run(_ flush: Int32) throws {
        repeat {
            stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(output.count)
            let r = deflate(stream, flush)
            guard r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR else {
                throw ImageError.corrupt("gzip: deflate failed (error \(r))")
            }
            let produced = output.count - Int(stream.pointee.avail_out)
            if produced > 0 { try next.write(UnsafeRawBufferPointer(rebasing: output[0..<produced])) }
            if r == Z_STREAM_END { return }
        } while stream.pointee.avail_out == 0 || (flush == Z_FINISH)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw ImageError.corrupt("write after the end of a gzip stream") }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(bytes.count)
        while stream.pointee.avail_in > 0 { try run(Z_NO_FLUSH) }
    }

    public func finish() throws {
        guard !finished else { return }
        finished = true
        stream.pointee.next_in = nil
        stream.pointee.avail_in = 0
        try run(Z_FINISH)
        try next.finish()
    }
}

/// Writes a file that appears only when complete: a temp file in the same
/// directory (`.<name>.tmp.<pid>`), renamed over `path` by `commit`; dropped
/// otherwise. What a killed writer left for the same `path` is removed first.
public final class AtomicFileSink: ByteSink {
    public let path: String
    private let tempPath: String
    private var fd: FileDescriptor?

    public init(path: String, mode: mode_t = 0o644) throws {
        self.path = path
        let dir = FS.parentDirectory(path)
        let name = "." + String(path.split(separator: "/").last ?? "out")
        FS.removeOrphanedTemporaries(in: dir, prefix: name + ".tmp.")
        let lead = dir == "/" ? "/" : (dir == "." && !path.hasPrefix("./") ? "" : dir + "/")
        tempPath = FS.temporaryPath(for: lead + name)
        fd = try FileDescriptor.open(tempPath, O_WRONLY | O_CREAT | O_EXCL, mode: mode)
    }

    deinit {
        if fd != nil { unlink(tempPath) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let fd else { throw ImageError.corrupt("write after commit") }
        try fd.write(bytes)
    }

    public func finish() throws {}

    /// Flushes and renames the file into place.
    public func commit() throws {
        guard let fd else { return }
        try sys("fsync", path) { fsync(fd.rawValue) }
        fd.close()
        self.fd = nil
        do { try sys("rename", path) { rename(tempPath, path) } } catch {
            unlink(tempPath)
            throw error
        }
    }
}
