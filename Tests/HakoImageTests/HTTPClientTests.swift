import HakoTestSupport
import Testing
import Foundation
import HakoSystem
@testable import HakoTransport

/// The HTTP/1.1 client against a loopback test server: framing, keep-alive,
/// redirects, and every malformed answer becomes an error, never a hang or a trap.
@Suite struct HTTPClientTests {
    private func get(_ client: HTTPClient, _ url: String, headers: [(String, String)] = []) throws -> (HTTPResponse, [UInt8]) {
        let r = try client.send(HTTPRequest("GET", try HTTPURL(url), headers: HTTPHeaders(headers)))
        return (r, try r.readAll())
    }

    @Test func urlsParseAndResolve() throws {
        let u = try HTTPURL("https://Registry.Example:5000/v2/x?y=1#frag")
        #expect(u.secure && u.host == "registry.example" && u.port == 5000 && u.target == "/v2/x?y=1")
        #expect(u.hostHeader == "registry.example:5000")
        #expect(try HTTPURL("http://h").target == "/")
        #expect(try HTTPURL("http://h").port == 80)
        #expect(try HTTPURL("https://[::1]:8443/a").host == "[::1]")
        #expect(try u.resolving("/v2/other").description == "https://registry.example:5000/v2/other")
        #expect(try u.resolving("https://cdn.example/blob?sig=1").origin == "https://cdn.example:443")
        #expect(try u.resolving("//cdn.example/b").description == "https://cdn.example/b")
        #expect(try u.resolving("sibling").target == "/v2/sibling")
        #expect(u.appendingQuery([("scope", "repository:a/b:pull"), ("service", "r e")]).target
                == "/v2/x?y=1&scope=repository%3Aa%2Fb%3Apull&service=r%20e")
        for bad in ["ftp://h/", "http://", "http://h:99999/", "http://h/a b", "https://[::1/x"] {
            #expect(throws: TransportError.self) { _ = try HTTPURL(bad) }
        }
    }

    @Test func lengthChunkedAndKeepAlive() throws {
        let server = try TestHTTPServer { r in
            switch r.path {
            case "/chunked": return .chunked(200, chunks: [Array("hel".utf8), Array("lo ".utf8), Array("world".utf8)])
            case "/empty": return .response(204)
            default: return .response(200, headers: [("X-Echo", r.headers["x-in"] ?? "")], body: Array("body of \(r.path)".utf8))
            }
        }
        let client = HTTPClient()
        let (a, body) = try get(client, server.base + "/one", headers: [("X-In", "v")])
        #expect(a.status == 200 && body == Array("body of /one".utf8) && a.headers["x-echo"] == "v")
        #expect(String(decoding: try get(client, server.base + "/chunked").1, as: UTF8.self) == "hello world")
        #expect(try get(client, server.base + "/empty").1.isEmpty)
        let head = try client.send(HTTPRequest("HEAD", try HTTPURL(server.base + "/x")))
        let headBody = try head.readAll()
        #expect(head.headers["Content-Length"] == "10" && headBody.isEmpty)
        // Four requests, one connection: each body read to its end returned it to the pool.
        #expect(server.connectionCount == 1)
        #expect(server.requests.allSatisfy { $0.headers["host"] == server.hostPort && $0.headers["user-agent"] == "hako/0.1" })
    }

    @Test func redirectsDropCredentialsAcrossOrigins() throws {
        let storage = try TestHTTPServer { r in .response(200, body: Array("blob; auth=\(r.headers["authorization"] ?? "none")".utf8)) }
        let registry = try TestHTTPServer { r in
            if r.path == "/same" { return .response(307, headers: [("Location", "/final")]) }
            if r.path == "/final" { return .response(200, body: Array("auth=\(r.headers["authorization"] ?? "none")".utf8)) }
            if r.path == "/loop" { return .response(302, headers: [("Location", "/loop")]) }
            return .response(307, headers: [("Location", storage.base + "/signed?sig=abc")])
        }
        let client = HTTPClient()
        let (r1, b1) = try get(client, registry.base + "/blob", headers: [("Authorization", "Bearer secret")])
        #expect(r1.status == 200 && String(decoding: b1, as: UTF8.self) == "blob; auth=none")
        #expect(r1.url.origin == "http://" + storage.hostPort)
        #expect(storage.requests.first?.target == "/signed?sig=abc")
        let (_, b2) = try get(client, registry.base + "/same", headers: [("Authorization", "Bearer secret")])
        #expect(String(decoding: b2, as: UTF8.self) == "auth=Bearer secret")
        #expect(throws: TransportError.self) { _ = try get(client, registry.base + "/loop") }
    }

    @Test func malformedAnswersAreErrors() throws {
        let server = try TestHTTPServer { r in
            switch r.path {
            case "/garbage": return .raw(Array("SSH-2.0-OpenSSH\r\n\r\n".utf8))
            case "/short": return .truncated(200, length: 100, body: Array("only this".utf8))
            case "/badchunk": return .raw(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8))
            case "/badlength": return .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n".utf8))
            case "/noheaderend": return .raw(Array("HTTP/1.1 200 OK\r\nX: y".utf8))
            case "/huge": return .response(200, body: [UInt8](repeating: 0x41, count: 5000))
            default: return .raw([])
            }
        }
        let client = HTTPClient()
        for path in ["/garbage", "/short", "/badchunk", "/badlength", "/noheaderend", "/closed"] {
            #expect(throws: TransportError.self, "\(path)") { _ = try get(client, server.base + path) }
        }
        let r = try client.send(HTTPRequest("GET", try HTTPURL(server.base + "/huge")))
        #expect(throws: TransportError.self) { _ = try r.readAll(limit: 1000) }
    }

    @Test func connectionErrorsNameThePeer() throws {
        // A port nobody listens on: bind one, close it, use it.
        let server = try TestHTTPServer { _ in .response(200) }
        let port = server.port
        server.stop()
        let client = HTTPClient(HTTPClient.Options(connectTimeout: 2))
        do {
            _ = try get(client, "http://127.0.0.1:\(port)/")
            Issue.record("connected to a closed port")
        } catch let e as TransportError {
            #expect(e.description.contains("127.0.0.1:\(port)"))
        }
    }

    @Test func tlsToAPlainServerIsAHandshakeFailure() throws {
        let server = try TestHTTPServer { _ in .response(400, body: Array("Client sent an HTTP request to an HTTPS server.".utf8)) }
        let client = HTTPClient(HTTPClient.Options(connectTimeout: 2, ioTimeout: 2, tls: { _ in TLSOptions(verify: false) }))
        do {
            _ = try get(client, "https://127.0.0.1:\(server.port)/v2/")
            Issue.record("TLS to a plain HTTP server succeeded")
        } catch let e as TransportError {
            #expect(e.isHandshakeFailure, "\(e)")
        }
    }

    @Test func fileBodiesStreamWithProgress() throws {
        let server = try TestHTTPServer { r in .response(201, body: Array("\(r.body.count):\(r.body.reduce(0) { $0 &+ Int($1) })".utf8)) }
        let path = "/tmp/hako-http-body-\(getpid())"
        let data = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try FS.writeAtomic(path, data)
        defer { unlink(path) }
        let seen = LockedBox<[Int64]>([])
        let body = HTTPBody.file(try FileDescriptor.open(path, O_RDONLY), length: Int64(data.count)) { n in seen.mutate { $0.append(n) } }
        let r = try HTTPClient().send(HTTPRequest("PUT", try HTTPURL(server.base + "/up"), body: body))
        #expect(r.status == 201)
        #expect(String(decoding: try r.readAll(), as: UTF8.self) == "\(data.count):\(data.reduce(0) { $0 &+ Int($1) })")
        #expect(seen.value.last == Int64(data.count))
        #expect(seen.value.count >= 2)
    }
}

/// A value shared with a @Sendable closure in tests.
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    init(_ v: T) { _value = v }
    var value: T { lock.withLock { _value } }
    func mutate(_ body: (inout T) -> Void) { lock.withLock { body(&_value) } }
}
