#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoEngine
import HakoRuntime
import HakoSystem
import Synchronization

/// What clients wait for around a container's start: `docker run` attaches
/// and waits (`next-exit`, `removed`) before it starts the container, so the
/// start that follows takes the monitor connection from the first byte
/// (`Engine.start(attach:)`) and hands it to the attach waiting for it; the
/// exit it reports goes to every waiter.
final class Sessions: @unchecked Sendable {
    final class PendingAttach: @unchecked Sendable {
        let handoff = Mutex<MonitorConnection?>(nil)
        let cancelled = Atomic<Bool>(false)
        /// Signalled at the handoff: the attach sleeps in poll, not in a loop.
        let ready = Wakeup()
    }

    final class Waiter: @unchecked Sendable {
        let code = Mutex<Int32?>(nil)
        /// Signalled when the code is set.
        let ready = Wakeup()
    }

    private struct State {
        var attaches: [String: [PendingAttach]] = [:]
        var waiters: [String: [Waiter]] = [:]
        /// Containers whose exit a start of this service's connection will report.
        var relayed: Set<String> = []
    }
    private let state = Mutex(State())

    func addAttach(_ id: String) -> PendingAttach {
        let a = PendingAttach()
        state.withLock { $0.attaches[id, default: []].append(a) }
        return a
    }

    func removeAttach(_ id: String, _ a: PendingAttach) {
        state.withLock { s in s.attaches[id]?.removeAll { $0 === a } }
    }

    func addWaiter(_ id: String) -> Waiter {
        let w = Waiter()
        state.withLock { $0.waiters[id, default: []].append(w) }
        return w
    }

    func removeWaiter(_ id: String, _ w: Waiter) {
        state.withLock { s in s.waiters[id]?.removeAll { $0 === w } }
    }

    /// At a start: the attach to hand the connection to (the first still waiting), and whether anyone waits for the exit.
    func takeForStart(_ id: String) -> (PendingAttach?, Bool) {
        state.withLock { s in
            var attach: PendingAttach?
            while let a = s.attaches[id]?.first {
                s.attaches[id]?.removeFirst()
                if !a.cancelled.load(ordering: .acquiring) { attach = a; break }
            }
            return (attach, !(s.waiters[id]?.isEmpty ?? true))
        }
    }

    func relaying(_ id: String) { state.withLock { _ = $0.relayed.insert(id) } }
    func isRelayed(_ id: String) -> Bool { state.withLock { $0.relayed.contains(id) } }

    /// The container's run ended with `code`: every waiter learns it.
    func exited(_ id: String, code: Int32) {
        let ws = state.withLock { s -> [Waiter] in
            let w = s.waiters[id] ?? []
            s.waiters[id] = nil
            s.relayed.remove(id)
            return w
        }
        for w in ws {
            w.code.withLock { $0 = code }
            w.ready.signal()
        }
    }
}

/// A pipe one thread signals and another sleeps on in poll, beside the
/// client's connection (whose hang-up also wakes it).
final class Wakeup: @unchecked Sendable {
    let readEnd: FileDescriptor
    let writeEnd: FileDescriptor

    init() {
        var fds: [Int32] = [-1, -1]
        _ = hako_pipe2(&fds, O_CLOEXEC | O_NONBLOCK)
        readEnd = FileDescriptor(fds[0])
        writeEnd = FileDescriptor(fds[1])
    }

    func signal() {
        var one: UInt8 = 1
        _ = write(writeEnd.rawValue, &one, 1)
    }

    /// Sleeps until signalled, the client hangs up, or `timeout` ms pass.
    /// (Without a pipe — out of fds — it sleeps the timeout: the callers look again.)
    func wait(client: HTTPConnection, timeout: Int32) {
        var fds = [pollfd(fd: readEnd.rawValue, events: Int16(POLLIN), revents: 0), pollfd(fd: client.fd.rawValue, events: 0, revents: 0)]
        _ = poll(&fds, 2, timeout)
    }
}

/// Docker's multiplexed stream: [stream, 0, 0, 0, size (u32 BE)] + payload.
enum StreamFrame {
    static func encode(_ stream: UInt8, _ payload: [UInt8]) -> [UInt8] {
        let n = UInt32(payload.count)
        return [stream, 0, 0, 0, UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + payload
    }
}

/// Relays between a hijacked client connection and a container's monitor
/// until the container's run ends. A client that goes away stops the copy of
/// output, not the reading: the exit is still learnt (and reported to waiters).
enum AttachRelay {
    struct Streams {
        var stdin: Bool
        var stdout: Bool
        var stderr: Bool
        var tty: Bool
    }

    /// Returns the exit code, or nil when the monitor went away without one
    /// (or, without `untilExit`, when the client went away first). With
    /// `untilExit` (the start's own connection, whose exit the waiters need)
    /// a client that goes away is let go at once and the monitor drained to the exit.
    static func run(_ monitor: MonitorConnection, client: HTTPConnection, _ s: Streams, untilExit: Bool) -> Int32? {
        var clientUp = true
        var stdinOpen = s.stdin
        func gone() {
            clientUp = false
            stdinOpen = false
            client.fd.close()
        }
        func out(_ stream: UInt8, _ b: [UInt8]) {
            guard clientUp, !b.isEmpty else { return }
            if !client.write(s.tty ? b : StreamFrame.encode(stream, b)) { gone() }
        }
        // What the client sent right after its request is the first of its stdin.
        if stdinOpen && !client.buffer.isEmpty {
            try? monitor.send(.stdin(client.buffer))
            client.buffer.removeAll()
        }
        var buf = [UInt8](repeating: 0, count: 32768)
        // The client's read side is watched until it ends (stdin closed, or the client gone).
        var clientReading = true
        while true {
            do {
                for f in try monitor.pending() {
                    switch f {
                    case .stdout(let b): if s.stdout { out(1, b) }
                    case .stderr(let b): if s.stderr { out(2, b) }
                    case .exit(let code, _): return code
                    default: break
                    }
                }
            } catch {
                return nil
            }
            if !clientUp && !untilExit { return nil }
            let watchClient = clientUp && clientReading
            var fds = [pollfd(fd: monitor.fd.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: watchClient ? client.fd.rawValue : -1, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 2, 1000) < 0 && errno != EINTR { return nil }
            if watchClient && fds[1].revents != 0 {
                let n = buf.withUnsafeMutableBytes { Glibc.recv(client.fd.rawValue, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    if stdinOpen { try? monitor.send(.stdin(Array(buf[0..<n]))) }
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    // The client closed its side (its stdin ended) or went away; a
                    // half-closed client still reads the output.
                    if stdinOpen && !s.tty { try? monitor.send(.closeStdin) }
                    stdinOpen = false
                    clientReading = false
                    if n < 0 || client.peerClosed { gone() }
                }
            }
            if fds[0].revents != 0 {
                guard (try? monitor.fill()) == true else {
                    // The monitor closed: what it sent last is in the buffer.
                    for f in (try? monitor.pending()) ?? [] {
                        switch f {
                        case .exit(let code, _): return code
                        case .stdout(let b): if s.stdout { out(1, b) }
                        case .stderr(let b): if s.stderr { out(2, b) }
                        default: break
                        }
                    }
                    return nil
                }
            }
        }
    }
}
