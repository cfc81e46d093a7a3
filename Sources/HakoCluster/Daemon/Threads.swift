#if canImport(Glibc)
import Glibc
#endif

/// Detached threads for blocking work beside a daemon's loop.
public enum Threads {
    final class Body: @unchecked Sendable {
        let run: () -> Void
        init(_ r: @escaping () -> Void) { run = r }
    }

    /// Runs `body` on a new detached thread; false if none could be made.
    @discardableResult
    public static func detach(_ body: @escaping () -> Void) -> Bool {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var t = pthread_t()
        guard pthread_create(&t, nil, { arg in
            guard let arg else { return nil }
            Unmanaged<Body>.fromOpaque(arg).takeRetainedValue().run()
            return nil
        }, box) == 0 else {
            Unmanaged<Body>.fromOpaque(box).release()
            return false
        }
        pthread_detach(t)
        return true
    }
}
