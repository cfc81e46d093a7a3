#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// The opt-in metrics endpoint: plain HTTP/1.1 on the daemon's poll loop,
/// `GET /metrics` answered with the exposition text (`GET /healthz` with a line
/// that says the daemon's loop is turning), one request per
/// connection. It reads nothing but a request line and headers (8 KiB, 5 s).
///
/// Confined to the loop's thread; `collect` is called there and must call its
/// completion there (it may hand work to another thread and post back).
public final class MetricsServer: @unchecked Sendable {
    public typealias Collector = (@escaping ([MetricFamily]) -> Void) -> Void

    final class Client {
        let fd: FileDescriptor
        var input: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        var timer: Int?
        init(_ fd: FileDescriptor) { self.fd = fd }
    }

    let loop: PollLoop
    let listener: FileDescriptor
    let collect: Collector
    /// The body of `GET /healthz`: an answer at all means the daemon's loop turns.
    let health: () -> String
    let log: ClusterLog
    var clients: [Int32: Client] = [:]
    public let port: UInt16
    static let maxClients = 64
    static let maxRequest = 8192
    static let timeout = 5.0

    public init(listen: Endpoint, loop: PollLoop, log: ClusterLog, health: @escaping () -> String = { "ok\n" },
                collect: @escaping Collector) throws(ClusterError) {
        self.loop = loop
        self.log = log
        self.collect = collect
        self.health = health
        do { listener = try Sockets.listen(listen) } catch {
            throw .config(key: "metrics_listen", reason: error.description)
        }
        port = Sockets.localPort(listener)
        loop.watch(listener.rawValue, events: Int16(POLLIN)) { [unowned self] _ in self.acceptAll() }
    }

    func acceptAll() {
        for _ in 0..<16 {
            guard let (fd, _) = Sockets.accept(listener) else { return }
            guard clients.count < MetricsServer.maxClients else { fd.close(); continue }
            let c = Client(fd)
            let raw = fd.rawValue
            clients[raw] = c
            c.timer = loop.after(MetricsServer.timeout) { [weak self] in self?.drop(raw) }
            loop.watch(raw, events: Int16(POLLIN)) { [unowned self] _ in self.readable(raw) }
        }
    }

    func drop(_ raw: Int32) {
        guard let c = clients.removeValue(forKey: raw) else { return }
        if let t = c.timer { loop.cancel(t) }
        loop.unwatch(raw)
        c.fd.close()
    }

    func readable(_ raw: Int32) {
        guard let c = clients[raw] else { return }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { Glibc.read(raw, $0.baseAddress, $0.count) }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard n > 0 else { drop(raw); return }
        c.input += buf[0..<n]
        if let request = HTTPRequestHead.parse(c.input) {
            loop.setEvents(raw, 0)
            answer(request, to: raw)
        } else if c.input.count > MetricsServer.maxRequest {
            respond(raw, status: "431 Request Header Fields Too Large", body: "request too large\n")
        }
    }

    func answer(_ r: HTTPRequestHead, to raw: Int32) {
        guard !r.method.isEmpty else {
            respond(raw, status: "400 Bad Request", body: "not an HTTP/1.x request\n")
            return
        }
        guard r.method == "GET" || r.method == "HEAD" else {
            respond(raw, status: "405 Method Not Allowed", body: "GET /metrics\n", extra: "Allow: GET, HEAD\r\n")
            return
        }
        let path = r.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? r.target
        switch path {
        case "/metrics":
            collect { [weak self] families in
                self?.respond(raw, status: "200 OK", body: Exposition.render(families), contentType: Exposition.contentType, head: r.method == "HEAD")
            }
        case "/healthz":
            respond(raw, status: "200 OK", body: health(), head: r.method == "HEAD")
        case "/":
            respond(raw, status: "200 OK", body: "hako metrics: /metrics, /healthz\n", head: r.method == "HEAD")
        default:
            respond(raw, status: "404 Not Found", body: "not found: \(path) (try /metrics)\n", head: r.method == "HEAD")
        }
    }

    func respond(_ raw: Int32, status: String, body: String, contentType: String = "text/plain; charset=utf-8", extra: String = "", head: Bool = false) {
        guard let c = clients[raw] else { return }
        let bytes = Array(body.utf8)
        let header = "HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bytes.count)\r\n\(extra)Connection: close\r\n\r\n"
        c.output = Array(header.utf8) + (head ? [] : bytes)
        loop.watch(raw, events: Int16(POLLOUT)) { [unowned self] _ in self.writable(raw) }
        writable(raw)
    }

    func writable(_ raw: Int32) {
        guard let c = clients[raw] else { return }
        while c.written < c.output.count {
            let n = c.output.withUnsafeBytes { b -> Int in
                guard let base = b.baseAddress else { return 0 }
                return Glibc.write(raw, base + c.written, b.count - c.written)
            }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            guard n > 0 else { drop(raw); return }
            c.written += n
        }
        shutdown(raw, Int32(SHUT_WR))
        drop(raw)
    }
}

/// The request line of an HTTP/1.x request whose head has fully arrived.
struct HTTPRequestHead: Equatable {
    var method: String
    var target: String

    static func parse(_ bytes: [UInt8]) -> HTTPRequestHead? {
        let end: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4, let _ = (0...(bytes.count - 4)).first(where: { bytes[$0..<($0 + 4)].elementsEqual(end) }) else {
            // A bare-LF client is tolerated too.
            guard let i = (0..<max(0, bytes.count - 1)).first(where: { bytes[$0] == 10 && bytes[$0 + 1] == 10 }) else { return nil }
            return requestLine(bytes[..<i])
        }
        return requestLine(bytes[...])
    }

    static func requestLine(_ bytes: ArraySlice<UInt8>) -> HTTPRequestHead? {
        let line = bytes.prefix { $0 != 13 && $0 != 10 }
        let parts = String(decoding: line, as: UTF8.self).split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return HTTPRequestHead(method: "", target: "") }
        return HTTPRequestHead(method: String(parts[0]), target: String(parts[1]))
    }
}
