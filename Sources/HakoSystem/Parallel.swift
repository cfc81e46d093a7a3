#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Runs blocking jobs (downloads, unpacks) on a few threads of their own.
/// Swift's cooperative pool has one thread per core and must not block; a
/// layer download blocks on the network, so it gets a real thread.
public enum Parallel {
    /// Calls `body` for every index in `0..<count`, at most `width` at once,
    /// and returns when all have finished. The first error thrown is rethrown
    /// after the others end; jobs not yet started when one fails are skipped,
    /// and `cancelled` tells running ones to give up early.
    public static func forEach(_ count: Int, width: Int,
                               _ body: @escaping @Sendable (_ index: Int, _ cancelled: CancelFlag) throws -> Void) throws {
        guard count > 0 else { return }
        let cancel = CancelFlag()
        if count == 1 || width <= 1 {
            for i in 0..<count { try body(i, cancel) }
            return
        }
        let next = Atomic<Int>(0)
        let firstError = Mutex<(any Error)?>(nil)
        let worker: @Sendable () -> Void = {
            while !cancel.isSet {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= count { return }
                do {
                    try body(i, cancel)
                } catch {
                    firstError.withLock { if $0 == nil { $0 = error } }
                    cancel.set()
                }
            }
        }
        var threads: [pthread_t] = []
        for _ in 0..<min(width, count) {
            if let tid = startThread(worker) { threads.append(tid) }
        }
        if threads.isEmpty { worker() }  // no thread could be made: do the work here
        for t in threads { pthread_join(t, nil) }
        if let e = firstError.withLock({ $0 }) { throw e }
    }
}

/// Set once, read from any thread: "stop what you are doing".
public final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public var isSet: Bool { flag.load(ordering: .acquiring) }
    public func set() { flag.store(true, ordering: .releasing) }
}

/// One job on a thread of its own while the caller does something else;
/// `join` waits for it and returns its result (or throws its error). Only the
/// thread that made the job joins it; a second join returns the same result.
/// Where no thread can be made, the job runs in `init`.
public final class BackgroundJob<T: Sendable>: @unchecked Sendable {
    private var thread: pthread_t?
    private let result = Mutex<Result<T, any Error>?>(nil)

    public init(_ body: @escaping @Sendable () throws -> T) {
        let run: @Sendable () -> Void = { [self] in
            let r = Result { try body() }
            result.withLock { $0 = r }
        }
        thread = startThread(run)
        if thread == nil { run() }
    }

    public func join() throws -> T {
        if let t = thread {
            pthread_join(t, nil)
            thread = nil
        }
        guard let r = result.withLock({ $0 }) else { throw SystemError("pthread_join", errno: EINVAL) }
        return try r.get()
    }
}

private final class ThreadBody: @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// A joinable thread running `body`; nil when none can be made.
private func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t? {
    var tid = pthread_t()
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let rc = pthread_create(&tid, nil, { raw in
        guard let raw else { return nil }
        Unmanaged<ThreadBody>.fromOpaque(raw).takeRetainedValue().body()
        return nil
    }, box)
    if rc == 0 { return tid }
    Unmanaged<ThreadBody>.fromOpaque(box).release()
    return nil
}

/// A value one thread hands another before its job ends: `fulfil` (the first
/// call counts; later ones are ignored), `wait` blocks until it has come.
public final class Handoff<T: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var value: Result<T, any Error>?

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    public func fulfil(_ r: Result<T, any Error>) {
        pthread_mutex_lock(mutex)
        if value == nil {
            value = r
            pthread_cond_broadcast(cond)
        }
        pthread_mutex_unlock(mutex)
    }

    public func wait() throws -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if let v = value { return try v.get() }
            pthread_cond_wait(cond, mutex)
        }
    }
}
