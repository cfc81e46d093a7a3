#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import HakoTransport

/// Bounds that keep one peer from hurting the other side.
public struct ConnectionLimits: Sendable {
    public var maxLine: Int
    /// Malformed lines in a row before the peer is disconnected.
    public var maxMalformed: Int
    /// Bytes queued for a peer that does not read before it is disconnected.
    public var maxOutput: Int
    /// Seconds a handshake may take.
    public var handshakeTimeout: Double

    public init(maxLine: Int = Wire.defaultMaxLine, maxMalformed: Int = 5, maxOutput: Int = 32 << 20, handshakeTimeout: Double = 10) {
        self.maxLine = maxLine
        self.maxMalformed = maxMalformed
        self.maxOutput = maxOutput
        self.handshakeTimeout = handshakeTimeout
    }
}

/// A TLS connection speaking the line protocol, driven by a `PollLoop`:
/// handshake, lines in (framed, bounded, decoded), lines out (queued, bounded).
/// A malformed or oversized line gets an error reply; `maxMalformed` of them
/// in a row close the connection.
final class LineConnection {
    enum Phase { case handshaking, open, closed }

    let id: Int
    let peer: String
    let stream: TLSConnection
    private unowned let loop: PollLoop
    let limits: ConnectionLimits
    private(set) var phase: Phase = .handshaking
    private var framer: LineFramer
    private var out: [UInt8] = []
    private var outStart = 0
    private var readWantsWrite = false
    private var writeWantsRead = false
    private var malformedInARow = 0
    private var handshakeTimer: Int?
    private var nextRequestID = 1

    /// Called once the handshake is done; false closes the connection.
    var onOpen: (LineConnection) -> Bool = { _ in true }
    var onMessage: (LineConnection, Envelope) -> Void = { _, _ in }
    var onClose: (LineConnection, String) -> Void = { _, _ in }
    /// The peer's verified certificate, once open.
    private(set) var peerCertificate: Certificate?
    /// What the owner attaches (a node id, a session).
    var context: [String: String] = [:]

    init(id: Int, fd: FileDescriptor, peer: String, context tls: TLSContext, server: Bool, loop: PollLoop, limits: ConnectionLimits) throws(ClusterError) {
        self.id = id
        self.peer = peer
        self.loop = loop
        self.limits = limits
        framer = LineFramer(maxLine: limits.maxLine)
        guard server == (tls.configuration.side == .server) else {
            throw .security("a \(server ? "server's" : "client's") connection needs a \(server ? "server's" : "client's") TLS context")
        }
        do { stream = try TLSConnection(fd: fd, peer: peer, context: tls) } catch { throw .security(error.reason) }
    }

    /// Registers with the loop and starts the handshake.
    func start() {
        loop.watch(stream.fd.rawValue, events: Int16(POLLIN | POLLOUT)) { [weak self] ev in self?.handle(ev) }
        handshakeTimer = loop.after(limits.handshakeTimeout) { [weak self] in
            guard let self, self.phase == .handshaking else { return }
            self.close("TLS handshake timed out")
        }
        advanceHandshake()
    }

    var outputQueued: Int { out.count - outStart }

    /// A new request id on this connection.
    func makeRequestID() -> Int {
        defer { nextRequestID += 1 }
        return nextRequestID
    }

    func send(_ line: [UInt8]) {
        guard phase == .open else { return }
        if outStart > 0 && outStart > out.count / 2 {
            out.removeFirst(outStart)
            outStart = 0
        }
        out.append(contentsOf: line)
        if outputQueued > limits.maxOutput {
            close("the peer does not read (\(outputQueued) bytes queued)")
            return
        }
        flush()
        updateInterest()
    }

    func sendError(to id: Int?, _ e: WireError) { send(WireEncoder.error(to: id, e)) }

    func close(_ reason: String) {
        guard phase != .closed else { return }
        phase = .closed
        if let t = handshakeTimer { loop.cancel(t) }
        loop.unwatch(stream.fd.rawValue)
        stream.close()
        onClose(self, reason)
    }

    private func handle(_ revents: Int16) {
        switch phase {
        case .closed: return
        case .handshaking: advanceHandshake()
        case .open:
            if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 || (writeWantsRead && revents & Int16(POLLIN) != 0) || readWantsWrite {
                readAvailable()
            }
            if phase == .open && (revents & Int16(POLLOUT) != 0) { flush() }
        }
        updateInterest()
    }

    private func advanceHandshake() {
        switch stream.handshakeStep() {
        case .done:
            if let t = handshakeTimer { loop.cancel(t); handshakeTimer = nil }
            phase = .open
            peerCertificate = stream.peerCertificate
            if !onOpen(self) {
                if phase == .open { close("refused") }
                return
            }
            readAvailable()
        case .wantRead: loop.setEvents(stream.fd.rawValue, Int16(POLLIN))
        case .wantWrite: loop.setEvents(stream.fd.rawValue, Int16(POLLOUT))
        case .closed: close("closed during the TLS handshake")
        case .failed(let why): close("TLS " + why)
        }
    }

    private func readAvailable() {
        readWantsWrite = false
        let (bytes, status) = stream.drain(max: 1 << 20)
        if !bytes.isEmpty { deliver(bytes) }
        guard phase == .open else { return }
        switch status {
        case .done:
            // Budget used up with more to read: continue on the next round.
            loop.after(0) { [weak self] in
                guard let self, self.phase == .open else { return }
                self.readAvailable()
                self.updateInterest()
            }
        case .wantRead: break
        case .wantWrite: readWantsWrite = true
        case .closed: close("closed by the peer")
        case .failed(let why): close("TLS " + why)
        }
    }

    private func deliver(_ bytes: [UInt8]) {
        for event in framer.push(bytes) {
            guard phase == .open else { return }
            switch event {
            case .tooLong:
                malformed(nil, WireError(.tooLong, "line longer than \(limits.maxLine) bytes"))
            case .line(let line):
                do {
                    let env = try WireDecoder.decode(line)
                    malformedInARow = 0
                    onMessage(self, env)
                } catch {
                    malformed(nil, error)
                }
            }
        }
    }

    /// Answers a line that is not a message; too many in a row end the connection.
    func malformed(_ id: Int?, _ e: WireError) {
        malformedInARow += 1
        sendError(to: id, e)
        if malformedInARow >= limits.maxMalformed {
            close("\(malformedInARow) malformed lines in a row (last: \(e.message))")
        }
    }

    private func flush() {
        writeWantsRead = false
        while outStart < out.count && phase == .open {
            let (n, status) = stream.writeStep(out[outStart...])
            outStart += n
            switch status {
            case .done: continue
            case .wantWrite: return
            case .wantRead: writeWantsRead = true; return
            case .closed: close("closed by the peer"); return
            case .failed(let why): close("TLS " + why); return
            }
        }
        if outStart == out.count {
            out.removeAll(keepingCapacity: out.count < 1 << 16)
            outStart = 0
        }
    }

    private func updateInterest() {
        guard phase == .open else { return }
        var ev = Int16(POLLIN)
        if outputQueued > 0 && !writeWantsRead { ev |= Int16(POLLOUT) }
        if readWantsWrite { ev |= Int16(POLLOUT) }
        loop.setEvents(stream.fd.rawValue, ev)
    }
}
