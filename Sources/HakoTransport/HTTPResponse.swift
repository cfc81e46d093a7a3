#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// A connection with a read buffer: what HTTP parses from.
final class BufferedConnection: @unchecked Sendable {
    let connection: any Connection
    let origin: String
    let peer: String
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    /// Requests this connection has carried (a reused one may have been closed by the peer).
    var requests = 0

    init(_ connection: any Connection, origin: String, peer: String) {
        self.connection = connection
        self.origin = origin
        self.peer = peer
        buffer = .allocate(byteCount: 65536, alignment: 16)
    }

    deinit {
        connection.close()
        buffer.deallocate()
    }

    var buffered: Int { end - start }

    private func fill() throws -> Int {
        if start < end { return end - start }
        start = 0
        end = try connection.read(into: buffer)
        return end
    }

    /// One line ending in CRLF (or LF), without it; nil at the end of the stream.
    func readLine(limit: Int = 16384) throws -> String? {
        var line: [UInt8] = []
        while true {
            if try fill() == 0 {
                if line.isEmpty { return nil }
                throw TransportError.protocolError(peer: peer, reason: "connection closed in the middle of a header line")
            }
            guard let base = buffer.baseAddress else { return nil }
            let bytes = UnsafeRawBufferPointer(start: base + start, count: end - start)
            if let nl = bytes.firstIndex(of: 0x0a) {
                line.append(contentsOf: bytes[0..<nl])
                start += nl + 1
                if line.last == 0x0d { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            line.append(contentsOf: bytes)
            start = end
            if line.count > limit {
                throw TransportError.protocolError(peer: peer, reason: "header line longer than \(limit) bytes")
            }
        }
    }

    /// Reads at most `target.count` bytes: buffered ones first.
    func read(into target: UnsafeMutableRawBufferPointer) throws -> Int {
        guard target.count > 0, let dst = target.baseAddress else { return 0 }
        if start < end {
            let n = min(end - start, target.count)
            guard let base = buffer.baseAddress else { return 0 }
            dst.copyMemory(from: base + start, byteCount: n)
            start += n
            return n
        }
        // Large reads go straight into the caller's buffer.
        return try connection.read(into: target)
    }
}

/// A response: status, headers, and a body read as a stream. The body must be
/// read to its end (or `discard`ed) for the connection to be reused.
public final class HTTPResponse: @unchecked Sendable {
    public let status: Int
    public let reason: String
    public let headers: HTTPHeaders
    /// The URL that answered (after redirects).
    public let url: HTTPURL

    private enum Framing { case none, length(Int64), chunked, untilClose }
    private var stream: BufferedConnection?
    private let framing: Framing
    private var remaining: Int64 = 0
    private var chunkRemaining: Int64 = 0
    private var finished = false
    private let keepAlive: Bool
    private let release: @Sendable (BufferedConnection) -> Void

    init(status: Int, reason: String, headers: HTTPHeaders, url: HTTPURL, stream: BufferedConnection,
         method: String, keepAlive: Bool, release: @escaping @Sendable (BufferedConnection) -> Void) throws {
        self.status = status
        self.reason = reason
        self.headers = headers
        self.url = url
        self.stream = stream
        self.release = release
        var reusable = keepAlive
        let framing: Framing
        if method == "HEAD" || status == 204 || status == 304 || (100..<200).contains(status) {
            framing = .none
        } else if let te = headers["Transfer-Encoding"], te.lowercased().contains("chunked") {
            framing = .chunked
        } else if let cl = headers["Content-Length"] {
            guard let n = Int64(cl.trimmed), n >= 0 else {
                throw TransportError.protocolError(peer: url.hostAndPort, reason: "invalid Content-Length \"\(cl)\"")
            }
            framing = .length(n)
        } else {
            framing = .untilClose
            reusable = false
        }
        self.framing = framing
        if case .length(let n) = framing { remaining = n }
        self.keepAlive = reusable
        if case .none = framing { finish() }
        if case .length(0) = framing { finish() }
    }

    deinit {
        // A body not read to its end leaves the connection in an unknown state: drop it.
        stream = nil
    }

    /// The declared body length, when the server gave one.
    public var contentLength: Int64? {
        if case .length(let n) = framing { return n }
        return nil
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        if keepAlive, let s = stream, s.buffered == 0 { release(s) }
        stream = nil
    }

    /// Reads body bytes; 0 at the end of the body.
    public func read(into target: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !finished, let s = stream, target.count > 0 else { return 0 }
        switch framing {
        case .none:
            return 0
        case .length:
            let want = Int(min(Int64(target.count), remaining))
            let n = try s.read(into: UnsafeMutableRawBufferPointer(rebasing: target[0..<want]))
            if n == 0 {
                throw TransportError.protocolError(peer: url.hostAndPort, reason: "connection closed with \(remaining) bytes of the body missing")
            }
            remaining -= Int64(n)
            if remaining == 0 { finish() }
            return n
        case .untilClose:
            let n = try s.read(into: target)
            if n == 0 { finish() }
            return n
        case .chunked:
            while chunkRemaining == 0 {
                guard let line = try s.readLine() else {
                    throw TransportError.protocolError(peer: url.hostAndPort, reason: "connection closed inside a chunked body")
                }
                let sizeText = line.split(separator: ";", maxSplits: 1).first.map { String($0).trimmed } ?? ""
                guard let size = Int64(sizeText, radix: 16), size >= 0 else {
                    throw TransportError.protocolError(peer: url.hostAndPort, reason: "invalid chunk size \"\(line)\"")
                }
                if size == 0 {
                    // Trailers, up to the empty line.
                    var count = 0
                    while let t = try s.readLine(), !t.isEmpty {
                        count += 1
                        if count > 100 { throw TransportError.protocolError(peer: url.hostAndPort, reason: "too many trailer fields") }
                    }
                    finish()
                    return 0
                }
                chunkRemaining = size
            }
            let want = Int(min(Int64(target.count), chunkRemaining))
            let n = try s.read(into: UnsafeMutableRawBufferPointer(rebasing: target[0..<want]))
            if n == 0 { throw TransportError.protocolError(peer: url.hostAndPort, reason: "connection closed inside a chunk") }
            chunkRemaining -= Int64(n)
            if chunkRemaining == 0 {
                guard let crlf = try s.readLine(), crlf.isEmpty else {
                    throw TransportError.protocolError(peer: url.hostAndPort, reason: "chunk not followed by CRLF")
                }
            }
            return n
        }
    }

    /// The whole body; an error when it is longer than `limit` bytes.
    public func readAll(limit: Int = 16 << 20) throws -> [UInt8] {
        if let n = contentLength, n > Int64(limit) {
            throw TransportError.protocolError(peer: url.hostAndPort, reason: "response of \(n) bytes exceeds the \(limit)-byte limit")
        }
        var out: [UInt8] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let n = try read(into: chunk)
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit {
                throw TransportError.protocolError(peer: url.hostAndPort, reason: "response exceeds the \(limit)-byte limit")
            }
        }
    }

    /// Reads and drops a small rest of the body so the connection can be reused;
    /// a large rest closes the connection instead.
    public func discard() {
        if let n = contentLength, remaining > 65536 || n < 0 {
            stream = nil
            finished = true
            return
        }
        _ = try? readAll(limit: 1 << 20)
        stream = nil
        finished = true
    }
}
