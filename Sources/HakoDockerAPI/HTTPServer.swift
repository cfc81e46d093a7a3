#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoImage
import HakoSystem
import HakoTransport
import Synchronization

/// One HTTP/1.1 request as the Docker clients send it.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path without the query, percent-decoded.
    public var path: String
    public var query: [String: [String]]
    /// Header names in lower case.
    public var headers: [String: String]
    public var body: [UInt8]

    public func query(_ key: String) -> String? { query[key]?.last }

    /// Docker's booleans in the query: 1/true/True (anything but "", 0 and false).
    public func flag(_ key: String, default d: Bool = false) -> Bool {
        guard let v = query(key) else { return d }
        return !(v.isEmpty || v == "0" || v.lowercased() == "false")
    }

    /// Whether the client asked to take the connection over (attach, exec start).
    public var wantsUpgrade: Bool {
        (headers["connection"]?.lowercased().contains("upgrade") ?? false) && headers["upgrade"] != nil
    }
}

/// A failure with the HTTP status and Docker's `{"message": …}` body.
public struct APIError: Error, Sendable {
    public var status: Int
    public var message: String
    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// Limits on what a client may send before it is answered.
public struct HTTPLimits: Sendable {
    /// Request line and headers.
    public var headerBytes = 64 << 10
    /// A request body held in memory (JSON bodies). Bodies the handler streams
    /// (`HTTPServer`'s `streamsBody`: archives) are not held and not capped here.
    public var bodyBytes = 8 << 20
    public init() {}
}

/// The server's side of one client connection: reads requests (keep-alive),
/// writes whole responses, chunked streams, or hands the socket over (hijack).
public final class HTTPConnection: @unchecked Sendable {
    public let fd: FileDescriptor
    let limits: HTTPLimits
    /// Bytes read past the current request (the next one, or a hijacked stream's first bytes).
    var buffer: [UInt8] = []
    /// Whether the response to the current request has begun.
    public private(set) var responded = false
    /// Whether the connection may serve another request after this one.
    var keepAlive = true
    /// Bytes of a refused body still on their way: read and dropped after the
    /// answer, so that the client sees the answer rather than a reset.
    var unreadBody = 0
    /// The current request is a HEAD: answers carry their headers only.
    var answeringHead = false
    /// A body left on the connection for the handler to stream (`body()`).
    enum BodyFraming: Equatable { case none, length, chunked }
    var streamedBody = BodyFraming.none
    /// Bytes left: of the whole body (length) or of the current chunk (chunked).
    var streamedLeft = 0
    var streamedChunks = 0

    init(fd: FileDescriptor, limits: HTTPLimits) {
        self.fd = fd
        self.limits = limits
    }

    // MARK: reading

    /// Reads more into the buffer; false at end of stream or on an error.
    func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd.rawValue, $0.baseAddress, $0.count, 0) }
            if n > 0 { buffer += chunk[0..<n]; return true }
            if n < 0 && errno == EINTR { continue }
            return false
        }
    }

    /// The next request; nil at a clean end of stream. Throws APIError for a request that breaks the limits or the syntax.
    func readRequest(streamsBody: (HTTPRequest) -> Bool = { _ in false }) throws -> HTTPRequest? {
        var headerEnd: Int?
        var scanned = 0
        while true {
            if let e = HTTPConnection.find([13, 10, 13, 10], in: buffer, from: max(0, scanned - 3)) { headerEnd = e; break }
            scanned = buffer.count
            if buffer.count > limits.headerBytes { throw APIError(431, "request headers larger than \(limits.headerBytes) bytes") }
            if !fill() {
                if buffer.isEmpty { return nil }
                throw APIError(400, "connection closed in the middle of a request")
            }
        }
        guard let end = headerEnd else { return nil }
        if end > limits.headerBytes { throw APIError(431, "request headers larger than \(limits.headerBytes) bytes") }
        let head = String(decoding: buffer[0..<end], as: UTF8.self)
        buffer.removeFirst(end + 4)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { throw APIError(400, "empty request") }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1."), requestLine[1].hasPrefix("/") else {
            keepAlive = false
            throw APIError(400, "malformed request line")
        }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { keepAlive = false; throw APIError(400, "malformed header line") }
            headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmed
        }
        if requestLine[2] == "HTTP/1.0" || headers["connection"]?.lowercased() == "close" { keepAlive = false }
        let (path, query) = HTTPConnection.splitTarget(requestLine[1])
        var body: [UInt8] = []
        let bare = HTTPRequest(method: requestLine[0].uppercased(), path: path, query: query, headers: headers, body: [])
        streamedBody = .none
        if streamsBody(bare) {
            if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
                streamedBody = .chunked
                streamedLeft = 0
                streamedChunks = 0
            } else if let lengthText = headers["content-length"] {
                guard let length = Int(lengthText), length >= 0 else { keepAlive = false; throw APIError(400, "invalid Content-Length") }
                streamedBody = length > 0 ? .length : .none
                streamedLeft = length
            }
        } else if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            body = try readChunkedBody()
        } else if let lengthText = headers["content-length"] {
            guard let length = Int(lengthText), length >= 0 else { keepAlive = false; throw APIError(400, "invalid Content-Length") }
            if length > limits.bodyBytes {
                keepAlive = false
                unreadBody = length - buffer.count
                throw APIError(413, "request body of \(length) bytes is larger than the limit of \(limits.bodyBytes) bytes")
            }
            while buffer.count < length {
                guard fill() else { keepAlive = false; throw APIError(400, "connection closed in the middle of the request body") }
            }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        }
        responded = false
        answeringHead = requestLine[0].uppercased() == "HEAD"
        return HTTPRequest(method: requestLine[0].uppercased(), path: path, query: query, headers: headers, body: body)
    }

    private func readChunkedBody() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            var lineEnd = HTTPConnection.find([13, 10], in: buffer, from: 0)
            while lineEnd == nil {
                if buffer.count > 1024 { keepAlive = false; throw APIError(400, "malformed chunk header") }
                guard fill() else { keepAlive = false; throw APIError(400, "connection closed in the middle of the request body") }
                lineEnd = HTTPConnection.find([13, 10], in: buffer, from: 0)
            }
            guard let le = lineEnd else { throw APIError(400, "malformed chunk header") }
            let sizeText = String(decoding: buffer[0..<le], as: UTF8.self).split(separator: ";").first.map { String($0).trimmed } ?? ""
            guard let size = Int(sizeText, radix: 16), size >= 0 else { keepAlive = false; throw APIError(400, "malformed chunk size") }
            buffer.removeFirst(le + 2)
            if body.count + size > limits.bodyBytes {
                keepAlive = false
                throw APIError(413, "request body larger than the limit of \(limits.bodyBytes) bytes")
            }
            while buffer.count < size + 2 {
                guard fill() else { keepAlive = false; throw APIError(400, "connection closed in the middle of the request body") }
            }
            if size == 0 {
                // Trailers are not used by the clients; the empty line ends the body.
                buffer.removeFirst(2)
                return body
            }
            body += buffer[0..<size]
            buffer.removeFirst(size + 2)
        }
    }

    /// The streamed body of the current request (see `HTTPServer`'s
    /// `streamsBody`), read straight from the connection.
    public func body() -> any ByteSource { RequestBody(self) }

    /// Reads at most `out.count` bytes of the streamed body; 0 at its end.
    func readBody(into out: UnsafeMutableRawBufferPointer) throws -> Int {
        guard out.count > 0, streamedBody != .none else { return 0 }
        if streamedBody == .chunked && streamedLeft == 0 {
            // The CRLF ending the previous chunk, then the next chunk's size line.
            if streamedChunks > 0 { try need(2); buffer.removeFirst(2) }
            let size = try chunkSizeLine()
            streamedChunks += 1
            if size == 0 {
                // Trailers (unused by the clients) up to the empty line.
                while true {
                    let le = try lineEnd()
                    buffer.removeFirst(le + 2)
                    if le == 0 { break }
                }
                streamedBody = .none
                return 0
            }
            streamedLeft = size
        }
        if buffer.isEmpty { try need(1) }
        let n = min(out.count, streamedLeft, buffer.count)
        buffer.withUnsafeBytes { src in
            if let s = src.baseAddress, let d = out.baseAddress { d.copyMemory(from: s, byteCount: n) }
        }
        buffer.removeFirst(n)
        streamedLeft -= n
        if streamedBody == .length && streamedLeft == 0 { streamedBody = .none }
        return n
    }

    /// At least `count` bytes in the buffer, or an error.
    private func need(_ count: Int) throws {
        while buffer.count < count {
            guard fill() else { keepAlive = false; throw APIError(400, "connection closed in the middle of the request body") }
        }
    }

    private func lineEnd() throws -> Int {
        while true {
            if let le = HTTPConnection.find([13, 10], in: buffer, from: 0) { return le }
            if buffer.count > 1024 { keepAlive = false; throw APIError(400, "malformed chunk header") }
            try need(buffer.count + 1)
        }
    }

    private func chunkSizeLine() throws -> Int {
        let le = try lineEnd()
        let sizeText = String(decoding: buffer[0..<le], as: UTF8.self).split(separator: ";").first.map { String($0).trimmed } ?? ""
        guard let size = Int(sizeText, radix: 16), size >= 0 else { keepAlive = false; throw APIError(400, "malformed chunk size") }
        buffer.removeFirst(le + 2)
        return size
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from start: Int) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = start
        while i <= hay.count - needle.count {
            if hay[i] == needle[0] {
                var j = 1
                while j < needle.count && hay[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    static func splitTarget(_ target: String) -> (String, [String: [String]]) {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = percentDecode(String(parts[0]), plusIsSpace: false)
        var query: [String: [String]] = [:]
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = percentDecode(String(kv[0]), plusIsSpace: true)
                query[key, default: []].append(kv.count > 1 ? percentDecode(String(kv[1]), plusIsSpace: true) : "")
            }
        }
        return (path, query)
    }

    static func percentDecode(_ s: String, plusIsSpace: Bool) -> String {
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%"), it.count >= 2,
               let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
                out.append(v)
                it = it.dropFirst(2)
            } else if c == UInt8(ascii: "+") && plusIsSpace {
                out.append(UInt8(ascii: " "))
            } else {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: writing

    /// Writes all of `bytes`; false when the peer has gone.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                guard let base = p.baseAddress else { return true }
                let n = Glibc.send(fd.rawValue, base + off, p.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                off += n
            }
            return true
        }
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 101: return "UPGRADED"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 409: return "Conflict"
        case 413: return "Request Entity Too Large"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 507: return "Insufficient Storage"
        case 501: return "Not Implemented"
        default: return "Status"
        }
    }

    func head(_ status: Int, _ headers: [(String, String)]) -> [UInt8] {
        var s = "HTTP/1.1 \(status) \(HTTPConnection.reason(status))\r\n"
        s += "Api-Version: \(DockerAPI.version)\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: hako/\(DockerAPI.engineVersion) (linux)\r\n"
        for (k, v) in headers { s += "\(k): \(v)\r\n" }
        s += "\r\n"
        return Array(s.utf8)
    }

    /// A whole response.
    public func respond(_ status: Int, body: [UInt8] = [], contentType: String? = "application/json", headers: [(String, String)] = []) {
        responded = true
        var h = headers
        if let contentType, status != 204 && status != 304 { h.append(("Content-Type", contentType)) }
        if status != 204 && status != 304 { h.append(("Content-Length", String(body.count))) }
        if !keepAlive { h.append(("Connection", "close")) }
        write(head(status, h) + (answeringHead ? [] : body))
    }

    public func respond(_ status: Int, json: JSON) {
        respond(status, body: Array((json.serialized() + "\n").utf8))
    }

    public func respondError(_ e: APIError) {
        respond(e.status, json: .object([("message", .string(e.message))]))
    }

    /// Starts a chunked response; send the parts with `chunk`, end with `endChunks`.
    public func beginChunks(_ status: Int = 200, contentType: String = "application/json", headers: [(String, String)] = []) {
        responded = true
        write(head(status, [("Content-Type", contentType), ("Transfer-Encoding", "chunked")] + headers))
    }

    /// One chunk; false when the peer has gone.
    @discardableResult
    public func chunk(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return true }
        return write(Array((String(bytes.count, radix: 16) + "\r\n").utf8) + bytes + [13, 10])
    }

    public func endChunks() { write(Array("0\r\n\r\n".utf8)) }

    /// Takes the connection over for a raw stream (attach, exec): 101 when the
    /// client asked to upgrade, else 200 and the stream. The connection ends with it.
    public func hijack(_ request: HTTPRequest, multiplexed: Bool) {
        responded = true
        keepAlive = false
        let type = multiplexed ? "application/vnd.docker.multiplexed-stream" : "application/vnd.docker.raw-stream"
        if request.wantsUpgrade {
            write(head(101, [("Content-Type", type), ("Connection", "Upgrade"), ("Upgrade", "tcp")]))
        } else {
            write(head(200, [("Content-Type", type)]))
        }
    }

    /// Reads and drops what remains of a streamed body (bounded: 1 GiB, 30 s).
    func drainStreamedBody() {
        var dropped = 0
        let deadline = monotonicSeconds() + 30
        var chunk = [UInt8](repeating: 0, count: 65536)
        while streamedBody != .none && dropped < 1 << 30 && monotonicSeconds() < deadline {
            guard let n = try? chunk.withUnsafeMutableBytes({ try readBody(into: $0) }), n > 0 else { return }
            dropped += n
        }
    }

    /// Reads and drops what remains of a refused body (bounded: 1 GiB, 30 s).
    func discardUnreadBody() {
        var left = min(unreadBody, 1 << 30)
        let deadline = monotonicSeconds() + 30
        var chunk = [UInt8](repeating: 0, count: 65536)
        while left > 0 && monotonicSeconds() < deadline {
            var p = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 1000) > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd.rawValue, $0.baseAddress, min($0.count, left), 0) }
            if n <= 0 { return }
            left -= n
        }
    }

    /// Whether the peer has gone (closed or reset the connection); never blocks.
    /// A peer that only shut its writing side down (the docker CLI does when
    /// it attaches without stdin) is still there and still reads.
    public var peerClosed: Bool {
        var p = pollfd(fd: fd.rawValue, events: 0, revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        return p.revents & (Int16(POLLHUP) | Int16(POLLERR)) != 0
    }
}

/// A streamed request body (an archive PUT, an image load).
final class RequestBody: ByteSource {
    let connection: HTTPConnection
    init(_ c: HTTPConnection) { connection = c }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try connection.readBody(into: buffer) }
}

/// A listening socket: unix, or TCP whose connections speak TLS first.
public struct HTTPListener: Sendable {
    public let socket: FileDescriptor
    /// Mutual TLS on every connection (TCP listeners).
    public let tls: TLSContext?
    public init(socket: FileDescriptor, tls: TLSContext? = nil) {
        self.socket = socket
        self.tls = tls
    }
}

/// Accepts connections on listening sockets and serves each on a thread of its own.
public final class HTTPServer: @unchecked Sendable {
    public typealias Handler = @Sendable (HTTPRequest, HTTPConnection) throws -> Void

    let listeners: [HTTPListener]
    let limits: HTTPLimits
    let handler: Handler
    /// Requests whose body the handler reads itself, as a stream (`HTTPConnection.body()`).
    let streamsBody: @Sendable (HTTPRequest) -> Bool
    private let state: Mutex<State>
    struct State { var active = 0; var lastActivity = monotonicSeconds(); var stopping = false }

    public init(listeners: [HTTPListener], limits: HTTPLimits = HTTPLimits(),
                streamsBody: @escaping @Sendable (HTTPRequest) -> Bool = { _ in false }, handler: @escaping Handler) {
        self.listeners = listeners
        self.limits = limits
        self.handler = handler
        self.streamsBody = streamsBody
        self.state = Mutex(State())
    }

    public func stop() { state.withLock { $0.stopping = true } }

    /// Serves until `stop`, or until nothing has happened for `idleExit` seconds
    /// with no connection open. After `releaseAfter` seconds so, the pages
    /// that starting and serving faulted in are given back (`ResidentMemory`).
    public func run(idleExit: Double?, releaseAfter: Double? = 1) {
        var releasedAt: Double = -1
        if releaseAfter != nil { ResidentMemory.shareOneHeapArena() }
        while true {
            let (stopping, active, last) = state.withLock { ($0.stopping, $0.active, $0.lastActivity) }
            if stopping { return }
            if let idle = idleExit, active == 0, monotonicSeconds() - last >= idle { return }
            if let after = releaseAfter, active == 0, releasedAt < last, monotonicSeconds() - last >= after {
                ResidentMemory.release()
                releasedAt = monotonicSeconds()
            }
            var fds = listeners.map { pollfd(fd: $0.socket.rawValue, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 250) > 0 else { continue }
            for (i, p) in fds.enumerated() where p.revents != 0 {
                let c = hako_accept_cloexec(p.fd)
                if c < 0 { continue }
                state.withLock { $0.active += 1; $0.lastActivity = monotonicSeconds() }
                let accepted = FileDescriptor(c)
                let tls = listeners[i].tls
                Thread.detach { [self] in
                    defer { self.state.withLock { $0.active -= 1; $0.lastActivity = monotonicSeconds() } }
                    var fd = accepted
                    if let tls {
                        // The handshake on this thread, then a relay: the server reads plain HTTP from a socketpair.
                        guard let plain = TLSRelay.start(accepted, context: tls) else { return }
                        fd = plain
                    }
                    let conn = HTTPConnection(fd: fd, limits: self.limits)
                    self.serve(conn)
                    conn.fd.close()
                }
            }
        }
    }

    func serve(_ conn: HTTPConnection) {
        while conn.keepAlive {
            let request: HTTPRequest
            do {
                guard let r = try conn.readRequest(streamsBody: streamsBody) else { return }
                request = r
            } catch let e as APIError {
                conn.keepAlive = false
                conn.respondError(e)
                conn.discardUnreadBody()
                return
            } catch {
                return
            }
            state.withLock { $0.lastActivity = monotonicSeconds() }
            do {
                try handler(request, conn)
            } catch {
                if conn.responded {
                    conn.keepAlive = false
                } else {
                    // The rest of a streamed body the handler gave up on is read
                    // (and dropped, bounded) first, so that the client sees the answer.
                    if conn.streamedBody != .none { conn.keepAlive = false; conn.drainStreamedBody() }
                    conn.respondError(DockerAPI.apiError(error))
                }
            }
            if !conn.responded { conn.respond(204) }
            // A streamed body the handler did not read to its end (padding after a
            // tar's end): read and dropped (bounded), so that closing does not
            // reset the connection under the answer; the next request cannot be found.
            if conn.streamedBody != .none {
                conn.keepAlive = false
                conn.drainStreamedBody()
            }
        }
    }
}

/// A detached thread running a closure.
enum Thread {
    final class Box: @unchecked Sendable {
        let body: () -> Void
        init(_ b: @escaping () -> Void) { body = b }
    }

    static func detach(_ body: @escaping () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().body()
            return nil
        }, box)
        if rc != 0 {
            // No thread: run it here rather than drop the connection.
            Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body()
            return
        }
        pthread_detach(t)
    }
}
