#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import Synchronization

/// A single-threaded event loop over poll(2): file descriptors, timers, and
/// closures posted from other threads (the only thread-safe entry points are
/// `post` and `stop`). Everything else runs on the loop's thread, so the
/// daemons' state needs no locks, and no peer can stall it: every socket is
/// non-blocking.
public final class PollLoop: @unchecked Sendable {
    struct Watch {
        var events: Int16
        var handler: (Int16) -> Void
    }

    struct Timer {
        var id: Int
        var deadline: Double
        var handler: () -> Void
    }

    private var watches: [Int32: Watch] = [:]
    private var timers: [Timer] = []
    private var nextTimer = 1
    /// A self-pipe: `post` and `stop` write a byte to wake `poll`.
    private let wake: FileDescriptor
    private let wakeWriter: FileDescriptor
    private let inbox = Mutex<[@Sendable () -> Void]>([])
    private let stopping = Atomic<Bool>(false)

    public init() throws(ClusterError) {
        do {
            (wake, wakeWriter) = try makePipe()
        } catch { throw .network("pipe: \(error)") }
        Sockets.setNonBlocking(wake.rawValue)
        Sockets.setNonBlocking(wakeWriter.rawValue)
    }

    public func watch(_ fd: Int32, events: Int16, _ handler: @escaping (Int16) -> Void) {
        watches[fd] = Watch(events: events, handler: handler)
    }

    public func setEvents(_ fd: Int32, _ events: Int16) {
        watches[fd]?.events = events
    }

    public func unwatch(_ fd: Int32) { watches[fd] = nil }

    /// Rebuilds the tables at their present size (after a burst of connections
    /// they keep the capacity of the peak).
    public func compact() {
        watches = Dictionary(uniqueKeysWithValues: watches.map { ($0.key, $0.value) })
        timers = timers.map { $0 }
    }

    /// Runs `handler` on the loop after `seconds`; the id cancels it.
    @discardableResult
    public func after(_ seconds: Double, _ handler: @escaping () -> Void) -> Int {
        let id = nextTimer
        nextTimer += 1
        timers.append(Timer(id: id, deadline: monotonicSeconds() + max(0, seconds), handler: handler))
        return id
    }

    public func cancel(_ id: Int) { timers.removeAll { $0.id == id } }

    /// Runs `f` on the loop's thread soon. Safe from any thread.
    public func post(_ f: @escaping @Sendable () -> Void) {
        inbox.withLock { $0.append(f) }
        var one: UInt8 = 1
        _ = Glibc.write(wakeWriter.rawValue, &one, 1)
    }

    /// Ends `run` after the current iteration. Safe from any thread.
    public func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        var one: UInt8 = 1
        _ = Glibc.write(wakeWriter.rawValue, &one, 1)
    }

    public var isStopping: Bool { stopping.load(ordering: .sequentiallyConsistent) }

    public func run() {
        while !isStopping {
            runOnce(maxWait: 3600)
        }
    }

    /// One poll round: waits at most `maxWait` seconds (less when a timer is due).
    public func runOnce(maxWait: Double) {
        var fds: [pollfd] = [pollfd(fd: wake.rawValue, events: Int16(POLLIN), revents: 0)]
        fds.reserveCapacity(watches.count + 1)
        for (fd, w) in watches { fds.append(pollfd(fd: fd, events: w.events, revents: 0)) }
        let now = monotonicSeconds()
        var wait = maxWait
        for t in timers { wait = min(wait, t.deadline - now) }
        let ms = Int32(max(0, min(wait, 3600)) * 1000 + (wait > 0 ? 0.999 : 0))
        let n = poll(&fds, nfds_t(fds.count), ms)
        if n < 0 && errno != EINTR { usleep(1000) }
        if n > 0 {
            if fds[0].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 256)
                while Glibc.read(wake.rawValue, &drain, drain.count) > 0 {}
            }
            for p in fds.dropFirst() where p.revents != 0 {
                // A handler may have removed this fd (or another) meanwhile.
                guard let w = watches[p.fd] else { continue }
                w.handler(p.revents)
            }
        }
        let posted = inbox.withLock { q -> [@Sendable () -> Void] in
            let out = q
            q.removeAll()
            return out
        }
        for f in posted { f() }
        let t = monotonicSeconds()
        let due = timers.filter { $0.deadline <= t }.sorted { $0.deadline < $1.deadline }
        if !due.isEmpty {
            let ids = Set(due.map(\.id))
            timers.removeAll { ids.contains($0.id) }
            for d in due { d.handler() }
        }
    }
}
