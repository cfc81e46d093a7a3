#if canImport(Glibc)
import Glibc
#endif

/// A few threads for blocking engine operations (a stop may wait out a
/// timeout), so the agent's event loop never blocks. Jobs with the same key
/// run one after another, in order.
final class WorkerPool: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var jobs: [(key: String, work: @Sendable () -> Void)] = []
    private var running: Set<String> = []
    private var stopping = false
    private var threads: [pthread_t] = []

    init(threads count: Int) {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
        for _ in 0..<max(1, count) {
            let box = Unmanaged.passRetained(self).toOpaque()
            var t = pthread_t()
            if pthread_create(&t, nil, { arg in
                guard let arg else { return nil }
                let pool = Unmanaged<WorkerPool>.fromOpaque(arg).takeRetainedValue()
                pool.work()
                return nil
            }, box) == 0 {
                threads.append(t)
            } else {
                Unmanaged<WorkerPool>.fromOpaque(box).release()
            }
        }
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func submit(key: String, _ work: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        jobs.append((key, work))
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Lets queued jobs finish, then ends the threads.
    func shutdown() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
        for t in threads { pthread_join(t, nil) }
        threads = []
    }

    private func work() {
        pthread_mutex_lock(mutex)
        while true {
            if let i = jobs.firstIndex(where: { !running.contains($0.key) }) {
                let job = jobs.remove(at: i)
                running.insert(job.key)
                pthread_mutex_unlock(mutex)
                job.work()
                pthread_mutex_lock(mutex)
                running.remove(job.key)
                pthread_cond_broadcast(cond)
                continue
            }
            if stopping && jobs.isEmpty { break }
            pthread_cond_wait(cond, mutex)
        }
        pthread_mutex_unlock(mutex)
    }
}
