import CZlib
import CZstd

/// Compression of a layer or archive stream, recognised by its magic number.
public enum Compression: String, Sendable, Equatable {
    case none
    case gzip
    case zstd
    case xz
    case bzip2

    /// Recognises the compression from the first bytes of a stream (up to 6).
    public static func detect(_ magic: [UInt8]) -> Compression {
        func starts(_ m: [UInt8]) -> Bool { magic.count >= m.count && Array(magic[0..<m.count]) == m }
        if starts([0x1f, 0x8b]) { return .gzip }
        if starts([0x28, 0xb5, 0x2f, 0xfd]) { return .zstd }
        if starts([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) { return .xz }
        if starts([0x42, 0x5a, 0x68]) { return .bzip2 }
        return .none
    }

    /// Peeks at `source`, and returns the detected compression with a source of
    /// the uncompressed bytes (plain streams pass through). Throws for formats
    /// hako cannot decode.
    public static func decompressing(_ source: any ByteSource) throws -> (Compression, any ByteSource) {
        let magic = try source.read(upTo: 6)
        let replay = PrefixedSource(prefix: magic, rest: source)
        let kind = detect(magic)
        switch kind {
        case .none: return (kind, replay)
        case .gzip: return (kind, try GzipSource(replay))
        case .zstd: return (kind, try ZstdSource(replay))
        case .xz: throw ImageError.unsupportedCompression("xz-compressed archives are not supported yet")
        case .bzip2: throw ImageError.unsupportedCompression("bzip2-compressed archives are not supported yet")
        }
    }
}

/// Decompresses a gzip stream (zlib's inflate, CRC and length checked),
/// including multi-member streams; NUL padding after the last member is
/// ignored, any other trailing data is an error.
public final class GzipSource: ByteSource {
    private let source: any ByteSource
    private let stream: UnsafeMutablePointer<z_stream>
    private let input: UnsafeMutableRawBufferPointer
    private var inputEOF = false
    private var memberEnded = false
    private var finished = false

    public init(_ source: any ByteSource) throws {
        self.source = source
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        input = .allocate(byteCount: 65536, alignment: 16)
        // 15 + 16: maximum window, gzip wrapper only.
        let r = inflateInit2_(stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        if r != Z_OK {
            stream.deinitialize(count: 1)
            stream.deallocate()
            input.deallocate()
            throw ImageError.malformedArchive("cannot initialise zlib (error \(r))")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        input.deallocate()
    }

    private func refill() throws {
        guard stream.pointee.avail_in == 0, !inputEOF else { return }
        let n = try source.read(into: input)
        if n == 0 { inputEOF = true; return }
        stream.pointee.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_in = uInt(n)
    }

    private func zlibMessage(_ code: Int32) -> String {
        if let msg = stream.pointee.msg { return String(cString: msg) }
        return "zlib error \(code)"
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !finished, let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let capacity = uInt(clamping: buffer.count)
        stream.pointee.next_out = base.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = capacity
        while stream.pointee.avail_out == capacity {
            try refill()
            if memberEnded {
                // Between members: another gzip member, NUL padding, or the end.
                while stream.pointee.avail_in > 0, stream.pointee.next_in.pointee == 0 {
                    stream.pointee.next_in += 1
                    stream.pointee.avail_in -= 1
                }
                if stream.pointee.avail_in == 0 {
                    if inputEOF { finished = true; return 0 }
                    continue
                }
                guard stream.pointee.next_in.pointee == 0x1f else {
                    throw ImageError.malformedArchive("unexpected data after the end of the gzip stream")
                }
                inflateReset(stream)
                memberEnded = false
            }
            let r = inflate(stream, Z_NO_FLUSH)
            switch r {
            case Z_OK:
                continue
            case Z_STREAM_END:
                memberEnded = true
            case Z_BUF_ERROR:
                if stream.pointee.avail_in == 0 && inputEOF {
                    throw ImageError.malformedArchive("truncated gzip stream")
                }
            default:
                throw ImageError.malformedArchive("gzip: \(zlibMessage(r))")
            }
        }
        return Int(capacity - stream.pointee.avail_out)
    }
}

/// Decompresses a zstd stream (libzstd's streaming API), including several
/// concatenated frames and skippable frames; a truncated stream is an error.
public final class ZstdSource: ByteSource {
    private let source: any ByteSource
    private let stream: OpaquePointer
    private let input: UnsafeMutableRawBufferPointer
    private var inBuffer = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
    private var inputEOF = false
    /// 0 when the last frame ended exactly; otherwise more input is due.
    private var frameOpen = false

    public init(_ source: any ByteSource) throws {
        self.source = source
        guard let s = ZSTD_createDStream() else { throw ImageError.malformedArchive("cannot initialise zstd") }
        stream = s
        input = .allocate(byteCount: Int(ZSTD_DStreamInSize()), alignment: 16)
        ZSTD_initDStream(s)
    }

    deinit {
        ZSTD_freeDStream(stream)
        input.deallocate()
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        var out = ZSTD_outBuffer(dst: base, size: buffer.count, pos: 0)
        while out.pos == 0 {
            if inBuffer.pos == inBuffer.size && !inputEOF {
                let n = try source.read(into: input)
                if n == 0 { inputEOF = true } else { inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: n, pos: 0) }
            }
            let drained = inputEOF && inBuffer.pos == inBuffer.size
            if drained && !frameOpen { break }  // the end, after a complete frame
            let r = ZSTD_decompressStream(stream, &out, &inBuffer)
            if ZSTD_isError(r) != 0 {
                throw ImageError.malformedArchive("zstd: " + String(cString: ZSTD_getErrorName(r)))
            }
            frameOpen = r != 0
            // No input left, nothing more came out, and the frame is not done: cut short.
            if drained && out.pos == 0 {
                if frameOpen { throw ImageError.malformedArchive("truncated zstd stream") }
                break
            }
        }
        return out.pos
    }
}
