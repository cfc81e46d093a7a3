import Foundation
import Glibc

/// A tiny HTTP/1.1 server on 127.0.0.1 (an ephemeral port) for tests: one
/// thread per connection, keep-alive, replies from a handler, every request
/// recorded. Only loopback is ever used.
final class TestHTTPServer: @unchecked Sendable {
    struct Request: Sendable {
        var method: String
        var target: String
        var headers: [String: String]
        var body: [UInt8]
        var connection: Int
        var path: String { String(target.prefix { $0 != "?" }) }
        var query: [String: String] {
            guard let q = target.split(separator: "?", maxSplits: 1).dropFirst().first else { return [:] }
            var out: [String: String] = [:]
            for pair in q.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                out[kv[0].removingPercentEncoding ?? kv[0]] = kv.count > 1 ? (kv[1].removingPercentEncoding ?? kv[1]) : ""
            }
            return out
        }
    }

    enum Reply: Sendable {
        case response(Int, headers: [(String, String)] = [], body: [UInt8] = [])
        /// Body sent in chunked encoding, in these pieces.
        case chunked(Int, headers: [(String, String)] = [], chunks: [[UInt8]])
        /// Bytes written as they are, then the connection is closed.
        case raw([UInt8])
        /// Headers announcing `length` bytes, then only `body`, then close.
        case truncated(Int, length: Int, body: [UInt8])
    }

    let port: UInt16
    private let listener: Int32
    private let handler: @Sendable (Request) -> Reply
    private let lock = NSLock()
    private var _requests: [Request] = []
    private var connections = 0
    private var stopped = false

    init(_ handler: @escaping @Sendable (Request) -> Reply) throws {
        self.handler = handler
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(s, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        listener = s
        port = UInt16(bigEndian: addr.sin_port)
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    deinit { stop() }

    var requests: [Request] { lock.withLock { _requests } }
    var connectionCount: Int { lock.withLock { connections } }
    var base: String { "http://127.0.0.1:\(port)" }
    var hostPort: String { "127.0.0.1:\(port)" }

    private let acceptEnded = DispatchSemaphore(value: 0)

    /// Stops listening. The accept thread closes the socket itself, so its fd
    /// number is never reused under it by another server of a parallel test.
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        if first {
            shutdown(listener, Int32(SHUT_RDWR))
            _ = acceptEnded.wait(timeout: .now() + 5)
        }
    }

    private func acceptLoop() {
        defer {
            close(listener)
            acceptEnded.signal()
        }
        while true {
            let c = accept(listener, nil, nil)
            if c < 0 {
                if errno == EINTR { continue }
                return
            }
            let id = lock.withLock { () -> Int in connections += 1; return connections }
            let t = Thread { [self] in serve(c, id) }
            t.start()
        }
    }

    private func serve(_ fd: Int32, _ id: Int) {
        defer { close(fd) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        func fill() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return false }
            buffer += chunk[0..<n]
            return true
        }
        while true {
            // Headers.
            var headerEnd: Int?
            while headerEnd == nil {
                if let r = find(buffer, [13, 10, 13, 10]) { headerEnd = r; break }
                if !fill() { return }
                // A TLS ClientHello: answer as Go's HTTP server does, and hang up.
                if buffer.first == 0x16 {
                    let reply = Array("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n".utf8)
                    _ = reply.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    return
                }
            }
            guard let end = headerEnd else { return }
            let head = String(decoding: buffer[0..<end], as: UTF8.self)
            buffer.removeFirst(end + 4)
            let lines = head.components(separatedBy: "\r\n")
            let parts = lines[0].split(separator: " ")
            guard parts.count >= 2 else { return }
            var headers: [String: String] = [:]
            for l in lines.dropFirst() {
                guard let colon = l.firstIndex(of: ":") else { continue }
                headers[l[..<colon].lowercased()] = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            while buffer.count < length { if !fill() { return } }
            let body = Array(buffer[0..<length])
            buffer.removeFirst(length)
            let request = Request(method: String(parts[0]), target: String(parts[1]), headers: headers, body: body, connection: id)
            lock.withLock { _requests.append(request) }
            let reply = handler(request)
            var out: [UInt8] = []
            var keep = true
            switch reply {
            case .response(let status, let hs, let b):
                out = Array("HTTP/1.1 \(status) X\r\n".utf8)
                for (k, v) in hs { out += Array("\(k): \(v)\r\n".utf8) }
                if !hs.contains(where: { $0.0.lowercased() == "content-length" }) { out += Array("Content-Length: \(b.count)\r\n".utf8) }
                out += Array("\r\n".utf8)
                if request.method != "HEAD" { out += b }
            case .chunked(let status, let hs, let chunks):
                out = Array("HTTP/1.1 \(status) X\r\nTransfer-Encoding: chunked\r\n".utf8)
                for (k, v) in hs { out += Array("\(k): \(v)\r\n".utf8) }
                out += Array("\r\n".utf8)
                for c in chunks where !c.isEmpty { out += Array((String(c.count, radix: 16) + "\r\n").utf8) + c + [13, 10] }
                out += Array("0\r\n\r\n".utf8)
            case .raw(let bytes):
                out = bytes
                keep = false
            case .truncated(let status, let length, let b):
                out = Array("HTTP/1.1 \(status) X\r\nContent-Length: \(length)\r\n\r\n".utf8) + b
                keep = false
            }
            var off = 0
            while off < out.count {
                let n = out[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                off += n
            }
            if !keep { return }
        }
    }

    private func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
        return nil
    }
}
