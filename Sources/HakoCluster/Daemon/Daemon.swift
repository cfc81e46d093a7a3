#if canImport(Glibc)
import Glibc
#endif

/// Clean stops for the daemons: SIGTERM, SIGINT and SIGHUP are blocked in
/// every thread (call `blockStopSignals` before any thread starts) and taken
/// by one thread with sigwait, which calls the daemon's thread-safe `stop`.
public enum Daemon {
    static func stopSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        return set
    }

    public static func blockStopSignals() {
        var set = stopSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        // A peer that goes away mid-write is an error to handle, not a reason to die.
        signal(SIGPIPE, SIG_IGN)
    }

    final class Box: @unchecked Sendable {
        let stop: @Sendable (Int32) -> Void
        init(_ s: @escaping @Sendable (Int32) -> Void) { stop = s }
    }

    /// Calls `stop` (on a thread of its own) when a stop signal arrives.
    public static func onStopSignal(_ stop: @escaping @Sendable (Int32) -> Void) {
        let box = Unmanaged.passRetained(Box(stop)).toOpaque()
        var t = pthread_t()
        _ = pthread_create(&t, nil, { arg in
            guard let arg else { return nil }
            let b = Unmanaged<Box>.fromOpaque(arg).takeRetainedValue()
            var set = Daemon.stopSet()
            var sig: Int32 = 0
            while sigwait(&set, &sig) != 0 {}
            b.stop(sig)
            return nil
        }, box)
        pthread_detach(t)
    }
}
