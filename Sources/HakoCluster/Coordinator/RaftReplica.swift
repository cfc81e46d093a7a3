#if canImport(Glibc)
import Glibc
#endif
import CHakoRaft
import CRaft
import HakoSystem
import Synchronization

/// What a coordinator needs to take part in Raft (`raft_*` in its config).
public struct RaftSettings: Sendable, Equatable {
    /// This coordinator's Raft id (nonzero, unique in the cluster).
    public var id: UInt64
    /// Where the other coordinators reach its Raft port (mutual TLS), and where it listens.
    public var address: Endpoint
    /// The first configuration (id, address), used only when the Raft directory is empty.
    public var bootstrap: [(id: UInt64, address: String)] = []
    public var electionTimeout = 0.75
    public var heartbeat = 0.1
    /// Entries after which the store is snapshotted and the log truncated, and how many stay behind.
    public var snapshotThreshold = 1024
    public var snapshotTrailing = 128
    /// Bytes of entries after which the store is snapshotted too, however few
    /// the entries (batches of thousands of placements are megabytes each).
    public var snapshotBytes: UInt64 = 64 << 20
    /// Replace the configuration by this coordinator alone (`--force-new-cluster`).
    public var forceNewCluster = false

    public init(id: UInt64, address: Endpoint) {
        self.id = id
        self.address = address
    }

    public static func == (a: RaftSettings, b: RaftSettings) -> Bool {
        a.id == b.id && a.address == b.address && a.bootstrap.map { "\($0.id)@\($0.address)" } == b.bootstrap.map { "\($0.id)@\($0.address)" }
            && a.electionTimeout == b.electionTimeout && a.snapshotThreshold == b.snapshotThreshold && a.snapshotBytes == b.snapshotBytes
    }
}

/// The role of this coordinator and who leads, as Raft last reported it.
public struct RaftStatus: Sendable, Equatable {
    public enum Role: Sendable, Equatable { case unavailable, follower, candidate, leader }
    public var role: Role
    public var leaderID: UInt64
    public var leaderRaftAddress: String
    public var term: UInt64
}

/// The coordinator's store replicated by Raft (libraft on its own libuv
/// thread, `CHakoRaft`). The leader proposes a `StoreBatch`; every coordinator
/// applies the committed batches in order to its own SQLite store through a
/// connection of the Raft thread; a snapshot is the whole database.
///
/// Raft traffic runs over mutual TLS with coordinator certificates: libraft
/// gets one end of a socketpair per peer connection, and a thread per
/// connection carries the other end through OpenSSL (`RaftTransport`).
public final class RaftReplica: @unchecked Sendable {
    public let settings: RaftSettings
    let log: ClusterLog
    /// Used on the Raft thread only (apply, snapshot, restore).
    let store: Store
    var handle: OpaquePointer?
    let transport: RaftTransport
    let onChange: @Sendable (RaftStatus) -> Void

    final class Waiter: @unchecked Sendable {
        var sem = sem_t()
        var status: Int32 = 0
        var message = ""
        /// Called (on the Raft thread) instead of posting the semaphore.
        var callback: (@Sendable (Int32, String) -> Void)?
        init() { sem_init(&sem, 0, 0) }
        deinit { sem_destroy(&sem) }
    }
    private let waiting = Mutex<[UInt64: Waiter]>([:])
    /// Batches this coordinator proposed, by token, with their entry's bytes:
    /// applied from memory when the entry comes back byte for byte the same
    /// (the leader decodes nothing it encoded; followers decode the bytes).
    private let proposed = Mutex<[UInt64: (entry: [UInt8], batch: StoreBatch)]>([:])
    private let nextToken = Atomic<UInt64>(1)
    /// Coordinator id → its client address (meta `coordinator.<id>`), as applied.
    private let addressBook = Mutex<[UInt64: String]>([:])
    /// The voters as Raft last reported them (id → Raft address).
    private let voters = Mutex<[UInt64: String]>([:])
    private let lastStatus = Mutex<RaftStatus>(RaftStatus(role: .unavailable, leaderID: 0, leaderRaftAddress: "", term: 0))

    /// Where this replica's time went, in seconds (the benchmark's breakdown
    /// of a commit): encoding its proposals, decoding entries others proposed,
    /// writing entries to its store.
    public struct Costs: Sendable, Equatable {
        public var encode = 0.0, decode = 0.0, store = 0.0
    }
    private let spent = Mutex(Costs())
    public var costs: Costs { spent.withLock { $0 } }

    public init(settings: RaftSettings, dataDir: String, databasePath: String, tls: RaftTransport.Credentials, log: ClusterLog,
                onChange: @escaping @Sendable (RaftStatus) -> Void) throws {
        self.settings = settings
        self.log = log
        self.onChange = onChange
        store = try Store(path: databasePath)
        transport = try RaftTransport(settings: settings, credentials: tls, log: log)
        let dir = dataDir + "/raft"
        if !FS.exists(dir) { try FS.makeDirectories(dir, mode: 0o700) }
        loadAddressBook(try store.load().meta)

        var cb = hako_raft_callbacks()
        cb.ctx = Unmanaged.passUnretained(self).toOpaque()
        cb.apply = { ctx, data, len in RaftReplica.from(ctx).apply(UnsafeRawBufferPointer(start: data, count: len)) }
        cb.snapshot = { ctx, data, len in RaftReplica.from(ctx).snapshot(data, len) }
        cb.restore = { ctx, data, len in RaftReplica.from(ctx).restore(UnsafeRawBufferPointer(start: data, count: len)) }
        cb.done = { ctx, token, status, message in
            RaftReplica.from(ctx).finished(token, status, message.map { String(cString: $0) } ?? "")
        }
        cb.changed = { ctx, state, leader, address, term in
            let r = RaftReplica.from(ctx)
            let role: RaftStatus.Role = switch state {
            case Int32(HAKO_RAFT_LEADER): .leader
            case Int32(HAKO_RAFT_FOLLOWER): .follower
            case Int32(HAKO_RAFT_CANDIDATE): .candidate
            default: .unavailable
            }
            let s = RaftStatus(role: role, leaderID: leader, leaderRaftAddress: address.map { String(cString: $0) } ?? "", term: term)
            r.lastStatus.withLock { $0 = s }
            r.onChange(s)
        }
        cb.dial = { ctx, h, id, address in
            let r = RaftReplica.from(ctx)
            r.transport.dial(handle: h, id: id, address: address.map { String(cString: $0) } ?? "")
        }
        cb.members = { ctx, n, ids, addresses, roles in
            let r = RaftReplica.from(ctx)
            var m: [UInt64: String] = [:]
            for i in 0..<Int(n) where roles?[i] == 1 /* RAFT_VOTER */ {
                if let id = ids?[i], let a = addresses?[i] { m[id] = String(cString: a) }
            }
            r.voters.withLock { $0 = m }
        }
        cb.log = { ctx, warning, message in
            let r = RaftReplica.from(ctx)
            let m = message.map { String(cString: $0) } ?? ""
            if warning != 0 { r.log.warning("raft: \(m)") } else { r.log.debug("raft: \(m)") }
        }

        let address = settings.address.description
        let ids = settings.bootstrap.map(\.id)
        var err = [CChar](repeating: 0, count: 256)
        var out: OpaquePointer?
        try transport.listen()
        let started: Int32 = dir.withCString { dirC in
            address.withCString { addrC in
                withArrayOfCStrings(settings.bootstrap.map(\.address)) { addrs in
                    ids.withUnsafeBufferPointer { idp in
                        var o = hako_raft_options()
                        o.id = settings.id
                        o.address = addrC
                        o.dir = dirC
                        o.election_timeout_ms = UInt32(settings.electionTimeout * 1000)
                        o.heartbeat_timeout_ms = UInt32(settings.heartbeat * 1000)
                        o.snapshot_threshold = UInt32(settings.snapshotThreshold)
                        o.snapshot_trailing = UInt32(settings.snapshotTrailing)
                        o.snapshot_bytes = settings.snapshotBytes
                        o.n_bootstrap = UInt32(ids.count)
                        o.bootstrap_ids = idp.baseAddress
                        o.bootstrap_addresses = addrs
                        o.force_single = settings.forceNewCluster ? 1 : 0
                        return hako_raft_start(&o, &cb, &out, &err, err.count)
                    }
                }
            }
        }
        guard started == 0, let out else {
            transport.stop()
            throw ClusterError.store("cannot start Raft in \(dir): \(String(cString: err))")
        }
        handle = out
        transport.attach(out)
    }

    static func from(_ ctx: UnsafeMutableRawPointer?) -> RaftReplica {
        Unmanaged<RaftReplica>.fromOpaque(ctx!).takeUnretainedValue()
    }

    /// Stops Raft (its thread joined) and the transport.
    public func stop() {
        guard let h = handle else { return }
        transport.stop()
        hako_raft_stop(h)
        handle = nil
        proposed.withLock { $0.removeAll() }
        // Whoever still waits learns that it will not be applied here.
        for w in waiting.withLock({ d in defer { d.removeAll() }; return Array(d.values) }) {
            w.status = Int32(9) // RAFT_SHUTDOWN
            w.message = "shutting down"
            if let cb = w.callback { cb(w.status, w.message) } else { sem_post(&w.sem) }
        }
    }

    public var status: RaftStatus { lastStatus.withLock { $0 } }
    /// Tests: a network partition around this coordinator (`RaftTransport.isolate`).
    func isolate(_ on: Bool) { transport.isolate(on) }
    /// Voter id → Raft address.
    public var members: [UInt64: String] { voters.withLock { $0 } }
    /// Coordinator id → client address, from the replicated store.
    public var clientAddresses: [UInt64: String] { addressBook.withLock { $0 } }

    // MARK: proposing (any thread but the Raft thread)

    /// Commits a batch through Raft: returns once it is applied to the local
    /// store, or throws (not the leader, no quorum within `timeout`, refused).
    public func commit(_ batch: StoreBatch, timeout: Double) throws(ClusterError) {
        let t0 = monotonicSeconds()
        let bytes = try batch.encodedEntry()
        let t1 = monotonicSeconds()
        spent.withLock { $0.encode += t1 - t0 }
        try wait(timeout: timeout) { token in
            proposed.withLock { $0[token] = (bytes, batch) }
            bytes.withUnsafeBytes { hako_raft_propose(self.handle, token, $0.baseAddress, $0.count) }
        }
    }

    public enum Change: Int32 { case addVoter = 1, remove = 2, demote = 3 }

    public func change(_ kind: Change, id: UInt64, address: String, timeout: Double) throws(ClusterError) {
        try wait(timeout: timeout) { token in hako_raft_change(self.handle, token, kind.rawValue, id, address) }
    }

    /// The same without waiting: `done` gets nil or the error, on the Raft thread (or at `stop`).
    public func changeAsync(_ kind: Change, id: UInt64, address: String, timeout: Double, done: @escaping @Sendable (ClusterError?) -> Void) {
        guard let handle else { done(.network("Raft is stopped")); return }
        let token = nextToken.add(1, ordering: .relaxed).newValue
        let w = Waiter()
        w.callback = { status, message in done(RaftReplica.error(status, message)) }
        waiting.withLock { $0[token] = w }
        hako_raft_change(handle, token, kind.rawValue, id, address)
    }

    static func error(_ status: Int32, _ message: String) -> ClusterError? {
        switch status {
        case 0: return nil
        case -1: return .store("the store refused the change: \(message)")
        case 7, 8: return .network("not the leader (\(message))")
        default: return .network("Raft: \(message)")
        }
    }

    private func wait(timeout: Double, _ submit: (UInt64) -> Void) throws(ClusterError) {
        guard handle != nil else { throw .network("Raft is stopped") }
        let token = nextToken.add(1, ordering: .relaxed).newValue
        let w = Waiter()
        waiting.withLock { $0[token] = w }
        submit(token)
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let until = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + timeout
        deadline.tv_sec = Int(until)
        deadline.tv_nsec = Int((until - Double(Int(until))) * 1e9)
        while sem_timedwait(&w.sem, &deadline) != 0 {
            if errno == EINTR { continue }
            // Timed out: if the answer arrived meanwhile, take it.
            if waiting.withLock({ $0.removeValue(forKey: token) }) != nil {
                proposed.withLock { $0[token] = nil }
                throw .network("no quorum: the change was not committed within \(Durations.format(timeout))")
            }
            while sem_wait(&w.sem) != 0 && errno == EINTR {}
            break
        }
        if let e = RaftReplica.error(w.status, w.message) { throw e }
    }

    func finished(_ token: UInt64, _ status: Int32, _ message: String) {
        proposed.withLock { $0[token] = nil }
        guard let w = waiting.withLock({ $0.removeValue(forKey: token) }) else { return }
        w.status = status
        w.message = lastRefusal.isEmpty || status != -1 ? message : lastRefusal
        if let cb = w.callback { cb(w.status, w.message) } else { sem_post(&w.sem) }
    }

    // MARK: the state machine (Raft thread)

    var lastRefusal = ""

    func apply(_ entry: UnsafeRawBufferPointer) -> Int32 {
        do {
            let own = proposed.withLock { d -> StoreBatch? in
                guard let theirs = entry.baseAddress else { return nil }
                for (token, p) in d where p.entry.count == entry.count
                    && p.entry.withUnsafeBytes({ $0.baseAddress.map { memcmp($0, theirs, entry.count) == 0 } ?? false }) {
                    d[token] = nil
                    return p.batch
                }
                return nil
            }
            let t0 = monotonicSeconds()
            let batch = try own ?? StoreBatch.decode(entry: entry)
            let t1 = monotonicSeconds()
            try store.commit(batch)
            let t2 = monotonicSeconds()
            spent.withLock {
                $0.store += t2 - t1
                if own == nil { $0.decode += t1 - t0 }
            }
            lastRefusal = ""
            if batch.meta.keys.contains(where: { $0.hasPrefix(RaftReplica.addressKeyPrefix) }) { loadAddressBook(batch.meta) }
            return 0
        } catch {
            lastRefusal = "\(error)"
            log.error("raft: cannot apply a log entry: \(error)")
            return 1
        }
    }

    func snapshot(_ data: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ len: UnsafeMutablePointer<Int>?) -> Int32 {
        do {
            let bytes = try store.serialize()
            guard let p = malloc(max(1, bytes.count)) else { return 1 }
            bytes.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: bytes.count) } }
            data?.pointee = p
            len?.pointee = bytes.count
            return 0
        } catch {
            log.error("raft: cannot snapshot the store: \(error)")
            return 1
        }
    }

    func restore(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        do {
            try store.replace(with: bytes)
            loadAddressBook(try store.load().meta)
            log.info("raft: store restored from a snapshot (\(bytes.count) bytes)")
            return 0
        } catch {
            log.error("raft: cannot restore a snapshot: \(error)")
            return 1
        }
    }

    /// Meta set once the store made before Raft is in the log (`StoredState.seedBatch`).
    public static let seededKey = "raft_seeded"

    /// Each coordinator's client address is replicated as meta `coordinator.<raft id>`.
    public static let addressKeyPrefix = "coordinator."

    func loadAddressBook(_ meta: [String: String]) {
        addressBook.withLock { book in
            for (k, v) in meta where k.hasPrefix(RaftReplica.addressKeyPrefix) {
                guard let id = UInt64(k.dropFirst(RaftReplica.addressKeyPrefix.count)) else { continue }
                if v.isEmpty { book[id] = nil } else { book[id] = v }
            }
        }
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withArrayOfCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { for c in copies { free(c) } }
    var ptrs: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) } + [nil]
    return ptrs.withUnsafeMutableBufferPointer { body(UnsafePointer($0.baseAddress)) }
}
