import Foundation
import HakoSystem
@testable import HakoTransport
import Synchronization
import Testing

/// A TLS server on a loopback port, one connection, driven by the
/// non-blocking steps: it handshakes, then echoes one line. What it saw of
/// the client is `outcome` once `finished` is signalled.
final class LoopbackServer: @unchecked Sendable {
    let listener: FileDescriptor
    let port: UInt16
    let outcome = Mutex<String?>(nil)
    let finished = DispatchSemaphore(value: 0)

    init(_ context: TLSContext) throws {
        listener = try Sockets.listen(host: "127.0.0.1", port: 0)
        port = Sockets.localPort(listener)
        Thread { [self] in
            let seen = LoopbackServer.serve(listener, context)
            outcome.withLock { $0 = seen }
            finished.signal()
        }.start()
    }

    static func serve(_ listener: FileDescriptor, _ context: TLSContext) -> String {
        let deadline = monotonicSeconds() + 5
        var p = pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 5000) > 0, let (fd, peer) = Sockets.accept(listener) else { return "no connection" }
        let tls: TLSConnection
        do { tls = try TLSConnection(fd: fd, peer: peer, context: context) } catch { return "\(error)" }
        defer { tls.close() }
        switch drive(tls, until: deadline, tls.handshakeStep) {
        case .done: break
        case let st: return "handshake: \(st)"
        }
        let who = tls.peerCertificate?.commonName ?? "anonymous"
        var line: [UInt8] = []
        while !line.contains(10) {
            var buf = [UInt8](repeating: 0, count: 256)
            var got = 0
            let st = drive(tls, until: deadline) {
                let (n, st) = buf.withUnsafeMutableBytes { tls.readStep(into: $0) }
                got = n
                return st
            }
            guard st == .done else { return "\(who) then \(st)" }
            line += buf[0..<got]
        }
        let st = drive(tls, until: deadline) { tls.writeStep(line[...]).1 }
        return st == .done ? who : "\(who) then \(st)"
    }
}

/// Runs a step until it is done or fails, polling for what it waits on.
func drive(_ tls: TLSConnection, until deadline: Double, _ step: () -> TLSConnection.Status) -> TLSConnection.Status {
    while true {
        let st = step()
        let events: Int16
        switch st {
        case .wantRead: events = Int16(POLLIN)
        case .wantWrite: events = Int16(POLLOUT)
        default: return st
        }
        let left = deadline - monotonicSeconds()
        guard left > 0 else { return .failed("timed out") }
        var p = pollfd(fd: tls.fd.rawValue, events: events, revents: 0)
        _ = poll(&p, 1, Int32(left * 1000) + 1)
    }
}

func certificate(_ pem: String) throws -> Certificate { try #require(Certificate.all(pem: pem).first) }
func key(_ pem: String) throws -> PrivateKey { try #require(PrivateKey.first(pem: pem)) }

func serverContext(clientCertificate: TLSContext.ClientCertificate = .required, trusting roots: [String] = [Fixtures.caA]) throws -> TLSContext {
    try TLSContext(.init(side: .server, identity: .certificate(try certificate(Fixtures.serverCertificate), key: try key(Fixtures.serverKey), chain: []),
                         trust: .roots(try roots.map(certificate)), clientCertificate: clientCertificate, versions: .tls13Only))
}

func clientContext(certificate cert: String? = Fixtures.clientCertificate, key k: String? = Fixtures.clientKey, trusting roots: [String]) throws -> TLSContext {
    var identity: TLSContext.Identity?
    if let cert, let k { identity = .certificate(try certificate(cert), key: try key(k), chain: []) }
    return try TLSContext(.init(side: .client, identity: identity, trust: .roots(try roots.map(certificate)), versions: .tls13Only))
}

/// A client session on a fresh non-blocking connection: the handshake, one
/// line sent and its echo read. What the server made of it, and the client's
/// own outcome ("echoed" or why not), with the server's certificate seen.
func exchange(_ server: LoopbackServer, _ context: TLSContext, serverName: String? = nil) throws -> (server: String, client: String, peer: String?) {
    let fd = try Sockets.connect(host: "127.0.0.1", port: server.port, timeout: 5)
    let tls = try TLSConnection(fd: fd, peer: "127.0.0.1:\(server.port)", context: context, serverName: serverName)
    let deadline = monotonicSeconds() + 5
    var client = "echoed"
    var peer: String?
    let hs = drive(tls, until: deadline, tls.handshakeStep)
    if hs != .done {
        client = "handshake: \(hs)"
    } else {
        peer = tls.peerCertificate?.commonName
        let line = Array("hello\n".utf8)
        let w = drive(tls, until: deadline) { tls.writeStep(line[...]).1 }
        var got: [UInt8] = []
        var r = w
        while w == .done && got.count < line.count {
            var n = 0
            var buf = [UInt8](repeating: 0, count: 64)
            r = drive(tls, until: deadline) {
                let (k, st) = buf.withUnsafeMutableBytes { tls.readStep(into: $0) }
                n = k
                return st
            }
            if r != .done { break }
            got += buf[0..<n]
        }
        if got != line { client = "after the handshake: \(w == .done ? r : w)" }
    }
    tls.close()
    _ = server.finished.wait(timeout: .now() + 10)
    return (server.outcome.withLock { $0 } ?? "nothing", client, peer)
}

@Suite struct CertificateTests {
    @Test func aCertificateSaysWhoItIsAndForHowLong() throws {
        let c = try certificate(Fixtures.serverCertificate)
        #expect(c.commonName == "server" && c.organization == "hako-test" && c.organizationalUnit == "servers")
        #expect(!c.serial.isEmpty && c.serial == c.serial.lowercased())
        let again = try certificate(Fixtures.serverCertificate), other = try certificate(Fixtures.clientCertificate)
        #expect(c.fingerprint.count == 64 && c.fingerprint == again.fingerprint)
        #expect(c.fingerprint != other.fingerprint)
        // notBefore 2026-12-06, notAfter a hundred years on.
        #expect(c.notBefore > 1_796_000_000 && c.notAfter - c.notBefore > 99 * 365 * 86400)
        #expect(Certificate.all(pem: (c.pemText ?? "") + Fixtures.caA).map(\.commonName) == ["server", "caA"])
        #expect(c.der.count > 300)
    }

    @Test func aKeyMatchesItsCertificateOnly() throws {
        let k = try key(Fixtures.serverKey)
        let own = try certificate(Fixtures.serverCertificate), other = try certificate(Fixtures.clientCertificate)
        #expect(k.matches(own))
        #expect(!k.matches(other))
    }

    @Test func textThatIsNotPEMHoldsNothing() {
        #expect(Certificate.all(pem: "not a certificate").isEmpty)
        #expect(PrivateKey.first(pem: Fixtures.caA) == nil)
        #expect(throws: TransportError.self) { try Certificate.load(file: "/nonexistent/ca.pem") }
    }
}

/// Mutual TLS over loopback with pinned roots, as the cluster uses it.
@Suite struct MutualTLSTests {
    @Test func bothSidesSeeWhoThePeerIs() throws {
        let server = try LoopbackServer(try serverContext())
        let r = try exchange(server, try clientContext(trusting: [Fixtures.caA]))
        #expect(r.client == "echoed")
        #expect(r.server == "client", "the server saw the client's certificate")
        #expect(r.peer == "server", "the client saw the server's certificate")
    }

    @Test func aServerOfAnotherCAIsRefused() throws {
        let server = try LoopbackServer(try serverContext())
        let r = try exchange(server, try clientContext(trusting: [Fixtures.caB]))
        #expect(r.client.contains("certificate verification failed"), "\(r.client)")
        #expect(r.server.hasPrefix("handshake:"), "\(r.server)")
    }

    @Test func aClientOfAnotherCAIsRefused() throws {
        let server = try LoopbackServer(try serverContext())
        let r = try exchange(server, try clientContext(certificate: Fixtures.rogueCertificate, key: Fixtures.rogueKey, trusting: [Fixtures.caA]))
        #expect(r.client != "echoed")
        #expect(r.server.contains("certificate verification failed"), "\(r.server)")
    }

    @Test func aClientWithoutACertificateIsRefusedOrLetThroughAsTheServerSays() throws {
        let strict = try LoopbackServer(try serverContext(clientCertificate: .required))
        let refused = try exchange(strict, try clientContext(certificate: nil, key: nil, trusting: [Fixtures.caA]))
        #expect(refused.client != "echoed" && refused.server.hasPrefix("handshake:"), "\(refused)")
        let lenient = try LoopbackServer(try serverContext(clientCertificate: .optional))
        let through = try exchange(lenient, try clientContext(certificate: nil, key: nil, trusting: [Fixtures.caA]))
        #expect(through.client == "echoed" && through.server == "anonymous", "\(through)")
    }

    /// A CA rotation: a context trusting the new root too replaces the old
    /// one for new connections; the old context is unchanged.
    @Test func replacingTheTrustTakesEffectForNewConnections() throws {
        let old = try clientContext(trusting: [Fixtures.caB])
        let rotated = try old.replacingTrust(.roots([try certificate(Fixtures.caB), try certificate(Fixtures.caA)]))
        let before = try exchange(try LoopbackServer(try serverContext()), old)
        #expect(before.client.contains("certificate verification failed"), "\(before.client)")
        let after = try exchange(try LoopbackServer(try serverContext()), rotated)
        #expect(after.client == "echoed" && after.server == "client", "\(after)")
        let again = try exchange(try LoopbackServer(try serverContext()), old)
        #expect(again.client.contains("certificate verification failed"), "\(again.client)")
    }

    /// A pinned root checks no host name; a server name, when given, is checked.
    @Test func aServerNameIsCheckedWhenGiven() throws {
        let good = try exchange(try LoopbackServer(try serverContext()), try clientContext(trusting: [Fixtures.caA]), serverName: "127.0.0.1")
        #expect(good.client == "echoed", "\(good)")
        let wrong = try exchange(try LoopbackServer(try serverContext()), try clientContext(trusting: [Fixtures.caA]), serverName: "registry.example")
        #expect(wrong.client.contains("certificate verification failed") && wrong.client.contains("hostname mismatch"), "\(wrong.client)")
    }
}

/// Every wait is bounded, blocking or not.
@Suite struct TimeoutTests {
    /// A listener whose accept queue is full drops the SYN: the connect
    /// hears nothing and gives up at its timeout.
    @Test func aConnectToAPortThatDoesNotAnswerTimesOut() throws {
        let listener = try Sockets.listen(host: "127.0.0.1", port: 0, backlog: 0)
        let port = Sockets.localPort(listener)
        var held: [FileDescriptor] = []
        var timedOut: (TransportError, Double)?
        for _ in 0..<8 where timedOut == nil {
            let start = monotonicSeconds()
            do {
                held.append(try Sockets.connect(host: "127.0.0.1", port: port, timeout: 0.5))
            } catch {
                timedOut = (error, monotonicSeconds() - start)
            }
        }
        let (error, took) = try #require(timedOut, "every connect was answered")
        #expect(error == .timeout(peer: "127.0.0.1:\(port)", what: "connecting"), "\(error)")
        #expect(took >= 0.45 && took < 3, "\(took) s")
        _ = held
    }

    /// A peer that takes the connection and never speaks TLS: the blocking
    /// handshake ends at the socket's timeout, as a timeout.
    @Test func aSilentPeerTimesTheHandshakeOut() throws {
        let listener = try Sockets.listen(host: "127.0.0.1", port: 0)
        let port = Sockets.localPort(listener)
        let tcp = try TCPConnection.connect(host: "127.0.0.1", port: port, timeout: 5, ioTimeout: 0.5)
        let start = monotonicSeconds()
        #expect(throws: TransportError.timeout(peer: "127.0.0.1:\(port)", what: "in the TLS handshake")) {
            _ = try TLSConnection(tcp: tcp, host: "127.0.0.1", context: try TLSContext(TLSOptions(verify: false)))
        }
        #expect(monotonicSeconds() - start < 3)
        _ = listener
    }

    /// After the handshake, a blocking read of a peer that sends nothing
    /// ends at the socket's timeout (it used to wait again and again).
    @Test func aBlockingReadTimesOut() throws {
        let listener = try Sockets.listen(host: "127.0.0.1", port: 0)
        let port = Sockets.localPort(listener)
        let context = try serverContext(clientCertificate: .optional)
        let served = DispatchSemaphore(value: 0)
        Thread {
            defer { served.signal() }
            var p = pollfd(fd: listener.rawValue, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 5000) > 0, let (fd, peer) = Sockets.accept(listener),
                  let tls = try? TLSConnection(fd: fd, peer: peer, context: context) else { return }
            _ = drive(tls, until: monotonicSeconds() + 5, tls.handshakeStep)
            // Silent until the client gave up.
            var q = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
            _ = poll(&q, 1, 5000)
            tls.close()
        }.start()
        let tcp = try TCPConnection.connect(host: "127.0.0.1", port: port, timeout: 5, ioTimeout: 0.5)
        let tls = try TLSConnection(tcp: tcp, host: "127.0.0.1", context: try clientContext(certificate: nil, key: nil, trusting: [Fixtures.caA]))
        let start = monotonicSeconds()
        var buf = [UInt8](repeating: 0, count: 16)
        #expect(throws: TransportError.timeout(peer: "127.0.0.1:\(port)", what: "waiting for data")) {
            _ = try buf.withUnsafeMutableBytes { try tls.read(into: $0) }
        }
        #expect(monotonicSeconds() - start < 3)
        tls.close()
        _ = served.wait(timeout: .now() + 10)
    }
}
