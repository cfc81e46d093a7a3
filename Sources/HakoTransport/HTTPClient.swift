#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import Synchronization

/// A small HTTP/1.1 client over TCP and TLS (OpenSSL): keep-alive connections
/// pooled per origin, chunked and length-framed bodies read as streams,
/// redirects for GET and HEAD (credentials are dropped when the origin
/// changes), request bodies from memory or straight from a file.
/// Safe to share between threads; each response is read by one thread.
public final class HTTPClient: Sendable {
    public struct Options: Sendable {
        public var userAgent: String
        public var connectTimeout: Double
        /// Longest wait for any read or write.
        public var ioTimeout: Double
        public var maxRedirects: Int
        /// TLS settings for a host (redirect targets too).
        public var tls: @Sendable (_ host: String) -> TLSOptions

        public init(userAgent: String = "hako/0.1", connectTimeout: Double = 30, ioTimeout: Double = 60,
                    maxRedirects: Int = 10, tls: @escaping @Sendable (String) -> TLSOptions = { _ in TLSOptions() }) {
            self.userAgent = userAgent
            self.connectTimeout = connectTimeout
            self.ioTimeout = ioTimeout
            self.maxRedirects = maxRedirects
            self.tls = tls
        }
    }

    public let options: Options
    private let idle = Mutex<[String: [BufferedConnection]]>([:])
    private let contexts = Mutex<[TLSOptions: TLSContext]>([:])
    /// Idle connections kept per origin.
    static let maxIdlePerOrigin = 8

    public init(_ options: Options = Options()) {
        self.options = options
    }

    /// Sends a request and returns the response with its headers read; the
    /// body is the caller's to read. Redirects are followed when the request allows.
    public func send(_ request: HTTPRequest) throws -> HTTPResponse {
        var current = request
        var hops = 0
        while true {
            let response = try sendOnce(current)
            let redirect = [301, 302, 303, 307, 308].contains(response.status)
            guard redirect, current.followRedirects, current.method == "GET" || current.method == "HEAD",
                  let location = response.headers["Location"] else { return response }
            response.discard()
            hops += 1
            guard hops <= options.maxRedirects else {
                throw TransportError.protocolError(peer: request.url.hostAndPort, reason: "more than \(options.maxRedirects) redirects")
            }
            let next = try current.url.resolving(location)
            if next.origin != current.url.origin {
                // A blob store (S3, a CDN) gets a signed URL, never the registry's credentials.
                current.headers.remove("Authorization")
            }
            if current.url.secure && !next.secure {
                throw TransportError.protocolError(peer: current.url.hostAndPort, reason: "refusing a redirect from https to \(next)")
            }
            current.url = next
        }
    }

    private func sendOnce(_ request: HTTPRequest) throws -> HTTPResponse {
        // A pooled connection the peer has closed fails at once: retry on a fresh one.
        if let pooled = takeIdle(request.url.origin) {
            do {
                return try exchange(request, on: pooled)
            } catch let e as TransportError where pooled.requests > 0 && Self.isStaleConnectionError(e) {
                // fall through to a new connection
            }
        }
        return try exchange(request, on: try connect(request.url))
    }

    static func isStaleConnectionError(_ e: TransportError) -> Bool {
        switch e {
        case .closed: return true
        case .protocolError(_, let reason): return reason.hasPrefix("connection closed before")
        default: return false
        }
    }

    private func exchange(_ request: HTTPRequest, on conn: BufferedConnection) throws -> HTTPResponse {
        conn.requests += 1
        try conn.connection.write(request.head(userAgent: options.userAgent))
        if let body = request.body { try writeBody(body, to: conn.connection) }
        // Informational (1xx) responses are skipped: the final one follows on the same stream.
        for _ in 0..<10 {
            let (status, reason, http10, headers) = try readHead(conn)
            if (100..<200).contains(status) { continue }
            let connectionHeader = headers["Connection"]?.lowercased() ?? ""
            let keepAlive = http10 ? connectionHeader.contains("keep-alive") : !connectionHeader.contains("close")
            return try HTTPResponse(status: status, reason: reason, headers: headers, url: request.url, stream: conn,
                                    method: request.method, keepAlive: keepAlive) { [weak self] c in self?.putIdle(c) }
        }
        throw TransportError.protocolError(peer: conn.peer, reason: "too many informational responses")
    }

    /// The status line and header fields of one response.
    private func readHead(_ conn: BufferedConnection) throws -> (Int, String, Bool, HTTPHeaders) {
        guard let statusLine = try conn.readLine() else {
            throw TransportError.protocolError(peer: conn.peer, reason: "connection closed before a response")
        }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status) else {
            throw TransportError.protocolError(peer: conn.peer, reason: "not an HTTP response: \"\(statusLine.prefix(60))\"")
        }
        let http10 = parts[0] == "HTTP/1.0"
        let reason = parts.count > 2 ? String(parts[2]) : ""
        var headers = HTTPHeaders()
        var total = 0
        while true {
            guard let line = try conn.readLine() else {
                throw TransportError.protocolError(peer: conn.peer, reason: "connection closed inside the response headers")
            }
            if line.isEmpty { break }
            total += line.utf8.count
            guard total < 256 << 10, headers.fields.count < 500 else {
                throw TransportError.protocolError(peer: conn.peer, reason: "response headers too large")
            }
            guard let colon = line.firstIndex(of: ":") else {
                throw TransportError.protocolError(peer: conn.peer, reason: "malformed header line \"\(line.prefix(60))\"")
            }
            headers.add(String(line[..<colon]).trimmed, String(line[line.index(after: colon)...]).trimmed)
        }
        return (status, reason, http10, headers)
    }

    private func writeBody(_ body: HTTPBody, to connection: any Connection) throws {
        switch body {
        case .bytes(let b):
            try connection.write(b)
        case .file(let fd, let length, let progress):
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            var offset: Int64 = 0
            while offset < length {
                let want = Int(min(Int64(buffer.count), length - offset))
                let n = try sys("read") { pread(fd.rawValue, buffer.baseAddress, want, off_t(offset)) }
                if n == 0 { throw SystemError("read", errno: EIO) }
                try connection.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                offset += Int64(n)
                progress?(offset)
            }
        }
    }

    // MARK: connections

    private func connect(_ url: HTTPURL) throws -> BufferedConnection {
        let host = url.host.hasPrefix("[") ? String(url.host.dropFirst().dropLast()) : url.host
        let tcp = try TCPConnection.connect(host: host, port: url.port, timeout: options.connectTimeout,
                                            ioTimeout: options.ioTimeout)
        if !url.secure { return BufferedConnection(tcp, origin: url.origin, peer: url.hostAndPort) }
        let tls = try TLSConnection(tcp: tcp, host: host, context: try context(options.tls(url.host)))
        return BufferedConnection(tls, origin: url.origin, peer: url.hostAndPort)
    }

    private func context(_ tls: TLSOptions) throws -> TLSContext {
        if let c = contexts.withLock({ $0[tls] }) { return c }
        let made = try TLSContext(tls)
        return contexts.withLock { cache in
            if let c = cache[tls] { return c }
            cache[tls] = made
            return made
        }
    }

    private func takeIdle(_ origin: String) -> BufferedConnection? {
        idle.withLock { pool in pool[origin]?.popLast() }
    }

    private func putIdle(_ c: BufferedConnection) {
        idle.withLock { pool in
            var list = pool[c.origin] ?? []
            if list.count < HTTPClient.maxIdlePerOrigin { list.append(c) }
            pool[c.origin] = list
        }
    }

    /// Closes every idle connection.
    public func closeIdle() {
        idle.withLock { $0.removeAll() }
    }
}
