#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import HakoTransport

/// "host:port", "[v6]:port" or ":port" (all addresses).
public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    public init(parsing s: String, defaultPort: UInt16? = nil) throws(ClusterError) {
        var host = s
        var portText: String?
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw .invalid("invalid address \"\(s)\"") }
            host = String(s[s.index(after: s.startIndex)..<close])
            let rest = s[s.index(after: close)...]
            if rest.hasPrefix(":") { portText = String(rest.dropFirst()) } else if !rest.isEmpty { throw .invalid("invalid address \"\(s)\"") }
        } else if let colon = s.lastIndex(of: ":"), s.filter({ $0 == ":" }).count == 1 {
            host = String(s[..<colon])
            portText = String(s[s.index(after: colon)...])
        }
        let port: UInt16
        if let p = portText {
            guard let n = UInt16(p), n > 0 else { throw .invalid("invalid port in \"\(s)\"") }
            port = n
        } else if let d = defaultPort {
            port = d
        } else {
            throw .invalid("\"\(s)\" has no port (host:port)")
        }
        self.init(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The cluster's sockets: HakoTransport's, addressed by `Endpoint`, with
/// failures said as the cluster says them.
extension Sockets {
    /// A non-blocking listening socket.
    static func listen(_ ep: Endpoint) throws(ClusterError) -> FileDescriptor {
        do { return try listen(host: ep.host, port: ep.port) } catch {
            if case .resolve = error { throw .network(error.description) }
            throw .network("cannot listen on \(ep): \(error.reason)")
        }
    }

    /// Connects with a time bound; the socket is left non-blocking, tuned
    /// as `boundRetransmissions` says.
    static func connect(_ ep: Endpoint, timeout: Double) throws(ClusterError) -> FileDescriptor {
        let fd: FileDescriptor
        do { fd = try connect(host: ep.host, port: ep.port, timeout: timeout) } catch {
            switch error {
            case .resolve: throw .network(error.description)
            case .timeout: throw .network("cannot connect to \(ep): timed out after \(Durations.format(timeout))")
            default: throw .network("cannot connect to \(ep): \(error.reason)")
            }
        }
        boundRetransmissions(fd.rawValue)
        return fd
    }

    /// Starts a connection without waiting (`Sockets.startConnect`); once
    /// connected (`finishConnect`), tuned as `connect` tunes it.
    static func startConnect(_ ep: Endpoint) throws(ClusterError) -> (fd: FileDescriptor, connected: Bool) {
        let started: (fd: FileDescriptor, connected: Bool)
        do { started = try startConnect(host: ep.host, port: ep.port) } catch {
            if case .resolve = error { throw .network(error.description) }
            throw .network("cannot connect to \(ep): \(error.reason)")
        }
        if started.connected { boundRetransmissions(started.fd.rawValue) }
        return started
    }

    /// How a connect started by `startConnect` ended: nil when connected (the
    /// stream then tuned as `connect` tunes it), else why not.
    static func finishConnect(_ fd: FileDescriptor) -> String? {
        if let why = connectError(fd) { return why }
        boundRetransmissions(fd.rawValue)
        return nil
    }

    /// Accepts one peer of the cluster (non-blocking); nil when none is waiting.
    /// Its lost segments are retried at least every second: after a 2 s
    /// outage TCP's doubling backoff would hold a heartbeat back past the
    /// grace period (kernels before 6.15 refuse the option; there the
    /// agent's repeated beats carry the load).
    static func acceptPeer(_ listener: FileDescriptor) -> (FileDescriptor, String)? {
        guard let (fd, peer) = accept(listener) else { return nil }
        boundRetransmissions(fd.rawValue)
        return (fd, peer)
    }
}
