#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import HakoTransport

/// Mutual TLS for a TCP listener, as the cluster's Raft transport does it:
/// the handshake (HakoTransport's `TLSConnection`), then a thread relays
/// between the TLS session and one end of a socketpair, whose other end the
/// HTTP server serves exactly like a unix connection (keep-alive, streams,
/// hijacked attach and exec, half-closes and all).
enum TLSRelay {
    /// The plain end for the server, or nil when the handshake failed (a
    /// client without a certificate of the CA is refused here and logged).
    static func start(_ accepted: FileDescriptor, context: TLSContext) -> FileDescriptor? {
        let address = Sockets.peerAddress(accepted)
        let peer = address == "?" ? "a client" : address
        let tls: TLSConnection
        do {
            tls = try TLSConnection(accepting: accepted, peer: peer, context: context)
        } catch {
            writeStderr("hako system service: refused a connection from \(peer): \(error)\n")
            return nil
        }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            tls.close()
            return nil
        }
        let relayEnd = FileDescriptor(pair[1])
        Thread.detach { relay(tls, relayEnd) }
        return FileDescriptor(pair[0])
    }

    /// Client → server until the client's close_notify (then the server reads
    /// its end of stream and may still answer); server → client until the
    /// server closes its end. Either side failing ends both.
    static func relay(_ tls: TLSConnection, _ plain: FileDescriptor) {
        defer {
            tls.close()
            plain.close()
        }
        var clientOpen = true
        var buf = [UInt8](repeating: 0, count: 65536)
        func toServer(_ n: Int) -> Bool {
            var off = 0
            while off < n {
                let w = buf.withUnsafeBytes { b in b.baseAddress.map { Glibc.send(plain.rawValue, $0 + off, n - off, Int32(MSG_NOSIGNAL)) } ?? -1 }
                if w < 0 && errno == EINTR { continue }
                if w <= 0 { return false }
                off += w
            }
            return true
        }
        while true {
            if clientOpen && tls.hasPendingBytes {
                guard let n = try? buf.withUnsafeMutableBytes({ try tls.readAvailable(into: $0) }) else { return }
                if n > 0 { guard toServer(n) else { return } }
                continue
            }
            var fds = [pollfd(fd: clientOpen ? tls.fd.rawValue : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: plain.rawValue, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, -1) < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[0].revents != 0 {
                let read: Int?
                do { read = try buf.withUnsafeMutableBytes { try tls.readAvailable(into: $0) } } catch { return }
                if let n = read {
                    if n == 0 {
                        // The client's end of stream (docker's CloseWrite on a hijacked stream).
                        clientOpen = false
                        _ = shutdown(plain.rawValue, Int32(SHUT_WR))
                    } else if !toServer(n) {
                        return
                    }
                }
            }
            if fds[1].revents != 0 {
                let n = buf.withUnsafeMutableBytes { Glibc.recv(plain.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                // The server closed the connection: close_notify and the end.
                if n <= 0 { return }
                do { try buf.withUnsafeBytes { try tls.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } } catch { return }
            }
        }
    }
}
