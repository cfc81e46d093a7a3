#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import Synchronization

/// Decoded configurations and states of the containers, kept between the
/// listings of a long-running caller (the cluster agent lists its node's
/// containers every second). A file is decoded again only when it changed:
/// both are replaced whole by a rename (the engine's `writeAtomic`, the
/// monitor's `write_state`), so a new inode, size or modification time marks
/// every change. The status is still derived afresh each time (the monitor's
/// lock, the freezer), exactly as `Engine.list()` does, and so is the health
/// check's live state (a small file the monitor writes in place after every
/// probe: `Engine.withLiveHealth`).
public final class ContainerListCache: Sendable {
    struct Stamp: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var seconds: Int
        var nanoseconds: Int

        init?(_ path: String) {
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
            size = Int64(st.st_size)
            seconds = Int(st.st_mtim.tv_sec)
            nanoseconds = Int(st.st_mtim.tv_nsec)
        }
    }

    struct Entry {
        var configStamp: Stamp
        var config: ContainerConfig
        var stateStamp: Stamp?
        var state: MonitorState?
    }

    private let entries = Mutex<[String: Entry]>([:])

    public init() {}

    /// How many containers it holds (for tests).
    public var count: Int { entries.withLock { $0.count } }

    func config(_ id: String, engine: Engine) throws -> ContainerConfig {
        let path = engine.paths.container(id).config
        let stamp = Stamp(path)
        if let stamp, let e = entries.withLock({ $0[id] }), e.configStamp == stamp { return e.config }
        let config = try engine.readConfig(id)
        // A file replaced between the stat and the read is decoded again next time: its stamp differs.
        if let stamp { entries.withLock { $0[id] = Entry(configStamp: stamp, config: config) } }
        return config
    }

    func state(_ id: String, engine: Engine) -> MonitorState? {
        let stamp = Stamp(engine.paths.container(id).state)
        guard let stamp else {
            entries.withLock { $0[id]?.stateStamp = nil; $0[id]?.state = nil }
            return nil
        }
        if let e = entries.withLock({ $0[id] }), e.stateStamp == stamp { return engine.withLiveHealth(id, e.state) }
        let state = engine.readStateFile(id)
        entries.withLock { $0[id]?.stateStamp = stamp; $0[id]?.state = state }
        return engine.withLiveHealth(id, state)
    }

    /// Drops the containers that are gone.
    func keep(only ids: Set<String>) {
        entries.withLock { m in
            for k in m.keys where !ids.contains(k) { m[k] = nil }
        }
    }
}
