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
    /// the entries (batches of thousands of placements are megabytes each):
    /// libraft holds them in memory until then. A snapshot is cheap beside
    /// it (at 1,000 tasks: a 340 kB image, taken in 0.1 ms; docs/cluster.md).
    /// A store whose snapshot is larger waits for that many bytes instead, so
    /// that snapshots never write more than the entries they replace.
    public var snapshotBytes: UInt64 = 2 << 20
    /// At most this many bytes of the `snapshotTrailing` entries are kept
    /// behind a snapshot (a follower further behind gets the snapshot).
    public var snapshotTrailingBytes: UInt64 = 2 << 20
    /// Replace the configuration by this coordinator alone (`--force-new-cluster`).
    public var forceNewCluster = false
    /// Tests only (a coordinator of an older hako): the newest entry format
    /// it writes, and the newest it reads and states (an entry of a newer one
    /// stops it, unapplied).
    var entryFormat = StoreBatch.entryVersion
    var newestEntryFormat = StoreBatch.entryVersion

    public init(id: UInt64, address: Endpoint) {
        self.id = id
        self.address = address
    }

    public static func == (a: RaftSettings, b: RaftSettings) -> Bool {
        a.id == b.id && a.address == b.address && a.bootstrap.map { "\($0.id)@\($0.address)" } == b.bootstrap.map { "\($0.id)@\($0.address)" }
            && a.electionTimeout == b.electionTimeout && a.snapshotThreshold == b.snapshotThreshold && a.snapshotBytes == b.snapshotBytes
            && a.snapshotTrailingBytes == b.snapshotTrailingBytes
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
    /// This Raft directory's identity (`raft/log-id`, made with the directory).
    let logID: String
    /// The last entry in the store (Raft thread only): the one the store's
    /// meta `raft_applied` names, kept in memory after each apply.
    var appliedMark: AppliedMark?
    /// Called on the Raft thread with the store's meta once an entry that
    /// changes the CA (meta `ca_root`, `ca_rotation`) or a snapshot is
    /// applied, before the entry counts as applied here.
    let caChanged: @Sendable ([String: String]) -> Void

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
    /// Every member, voters and spares (all receive entries).
    private let everyone = Mutex<Set<UInt64>>([])
    /// What each coordinator stated it reads, as applied (`CoordinatorReads`).
    private let stated = Mutex<[UInt64: CoordinatorReads]>([:])
    /// The format of the last entry this coordinator wrote (0: none yet).
    private let written = Atomic<UInt8>(0)
    /// Who the Raft port refuses, as applied (`RaftTransport.Refusals`).
    private let refused = Mutex<RaftTransport.Refusals>(RaftTransport.Refusals())
    /// Set first thing in `stop`: an apply waiting for the disk gives up.
    private let stopping = Atomic<Bool>(false)
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
                caChanged: @escaping @Sendable ([String: String]) -> Void = { _ in },
                onChange: @escaping @Sendable (RaftStatus) -> Void) throws {
        self.settings = settings
        self.log = log
        self.onChange = onChange
        self.caChanged = caChanged
        store = try Store(path: databasePath)
        transport = try RaftTransport(settings: settings, credentials: tls, log: log)
        let dir = dataDir + "/raft"
        if !FS.exists(dir) { try FS.makeDirectories(dir, mode: 0o700) }
        logID = try RaftReplica.logIdentity(dir)
        let meta = try store.loadMeta()
        appliedMark = AppliedMark(meta[RaftReplica.appliedKey])
        loadAddressBook(meta)
        loadReads(meta)
        try loadRevoked()

        var cb = hako_raft_callbacks()
        cb.ctx = Unmanaged.passUnretained(self).toOpaque()
        cb.apply = { ctx, index, data, len in RaftReplica.from(ctx).apply(index: index, UnsafeRawBufferPointer(start: data, count: len)) }
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
            var all = Set<UInt64>()
            for i in 0..<Int(n) {
                guard let id = ids?[i] else { continue }
                all.insert(id)
                if roles?[i] == 1 /* RAFT_VOTER */, let a = addresses?[i] { m[id] = String(cString: a) }
            }
            r.voters.withLock { $0 = m }
            r.everyone.withLock { $0 = all }
        }
        cb.started = { ctx, last in RaftReplica.from(ctx).started(lastIndex: last) }
        cb.log = { ctx, level, message in
            let r = RaftReplica.from(ctx)
            let m = message.map { String(cString: $0) } ?? ""
            switch level {
            case Int32(HAKO_RAFT_LOG_WARNING): r.log.warning("raft: \(m)")
            case Int32(HAKO_RAFT_LOG_INFO): r.log.info("raft: \(m)")
            default: r.log.debug("raft: \(m)")
            }
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
                        o.snapshot_trailing_bytes = settings.snapshotTrailingBytes
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
        stopping.store(true, ordering: .relaxed)
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
    /// The bytes of the log entries libraft holds in memory (0 once stopped).
    public var logBytes: UInt64 { handle.map { hako_raft_log_bytes($0) } ?? 0 }
    /// Tests: a network partition around this coordinator (`RaftTransport.isolate`).
    func isolate(_ on: Bool) { transport.isolate(on) }
    /// Voter id → Raft address.
    public var members: [UInt64: String] { voters.withLock { $0 } }
    /// Coordinator id → client address, from the replicated store.
    public var clientAddresses: [UInt64: String] { addressBook.withLock { $0 } }
    /// What each coordinator stated it reads, as applied here.
    public var statedReads: [UInt64: CoordinatorReads] { stated.withLock { $0 } }
    /// What this coordinator reads (it states it through the leader).
    public var ownReads: CoordinatorReads { CoordinatorReads(entryFormat: settings.newestEntryFormat, schema: Store.schemaVersion) }
    /// The format of the last entry written here (0: none yet).
    public var lastWrittenFormat: UInt8 { written.load(ordering: .relaxed) }

    /// The format the leader writes: the newest every member reads (this
    /// one's own at most), a member that has not stated it counting as
    /// format 1. A joining coordinator that reads newer formats raises
    /// nothing; the last member upgraded raises it.
    public var writeFormat: UInt8 {
        let members = everyone.withLock { $0 }
        guard !members.isEmpty else { return CoordinatorReads.unstated.entryFormat }
        let said = statedReads
        var format = settings.entryFormat
        for id in members where id != settings.id {
            format = min(format, said[id]?.entryFormat ?? CoordinatorReads.unstated.entryFormat)
        }
        return max(1, format)
    }

    // MARK: proposing (any thread but the Raft thread)

    /// Commits a batch through Raft: returns once it is applied to the local
    /// store, or throws (not the leader, no quorum within `timeout`, refused).
    public func commit(_ batch: StoreBatch, timeout: Double) throws(ClusterError) {
        let t0 = monotonicSeconds()
        let format = writeFormat
        let before = written.exchange(format, ordering: .relaxed)
        if before != format {
            let said = statedReads
            let slowest = said.filter { $0.value.entryFormat == format }.keys.sorted().map { "coordinator \($0)" }
            log.info("raft: writing log entries of format \(format), the newest every coordinator reads\(before == 0 ? "" : " (was \(before))")\(format < settings.entryFormat ? ": \(slowest.isEmpty ? "a coordinator has not said what it reads" : slowest.joined(separator: ", ") + " reads no newer")" : "")")
        }
        let bytes = try batch.encodedEntry(format: format)
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
    /// An entry of a newer format was met (logged once): nothing after it is applied.
    var metNewerFormat = false

    /// `apply`'s outcomes (`hako_raft_callbacks.apply`).
    static let applied = Int32(HAKO_RAFT_APPLY_OK), refused = Int32(HAKO_RAFT_APPLY_REFUSED), notHere = Int32(HAKO_RAFT_APPLY_NOT_HERE)

    /// Where the store stands in the log: the entry last committed to it, and
    /// the Raft directory whose log that index counts in. libraft applies
    /// every entry after its last snapshot again when it starts; the store
    /// (a file, not memory) already has them unless a snapshot was restored.
    /// Entries at or below the mark of this same log are skipped, so a
    /// restart applies nothing twice (events, for one, would be doubled).
    /// Another directory's mark (a snapshot from the leader, a wiped and
    /// rebuilt `raft/`) skips nothing.
    struct AppliedMark: Equatable {
        var log: String
        var index: UInt64
        init(log: String, index: UInt64) { self.log = log; self.index = index }
        init?(_ text: String?) {
            guard let parts = text?.split(separator: " "), parts.count == 2, let i = UInt64(parts[1]) else { return nil }
            log = String(parts[0]); index = i
        }
        var text: String { "\(log) \(index)" }
    }
    static let appliedKey = "raft_applied"

    /// The identity of the Raft directory `dir`: a random id written once
    /// (0600) beside libraft's files, so a directory made again gets another.
    static func logIdentity(_ dir: String) throws -> String {
        let path = dir + "/log-id"
        if FS.exists(path) {
            let id = try FS.readString(path).trimmed
            if !id.isEmpty, id.allSatisfy({ $0.isHexDigit }) { return id }
        }
        let id = hexString(randomBytes(16))
        try FS.writeAtomic(path, id + "\n", mode: 0o600)
        return id
    }

    /// libraft started (on the Raft thread, before any entry is applied).
    /// `--force-new-cluster` goes on from the log's end as a new history: a
    /// store ahead of its log (a backup whose `cluster.db` was copied after
    /// `raft/`) holds entries of the old one past that end, which the new
    /// entries at those indices are not. The mark is brought down to the
    /// log's end, so those are applied and only the old log is skipped.
    func started(lastIndex: UInt64) {
        guard settings.forceNewCluster, let mark = appliedMark, mark.log == logID, mark.index > lastIndex else { return }
        log.warning("raft: the store holds entries up to \(mark.index), its log ends at \(lastIndex): the new cluster's entries from \(lastIndex + 1) on are applied")
        appliedMark = AppliedMark(log: logID, index: lastIndex)
    }

    func apply(index: UInt64, _ entry: UnsafeRawBufferPointer) -> Int32 {
        if index > 0, let mark = appliedMark, mark.log == logID, index <= mark.index {
            // Already in the store: a restart's replay of entries after the last snapshot.
            return RaftReplica.applied
        }
        if let format = StoreBatch.entryFormat(of: entry), format > settings.newestEntryFormat {
            // Newer coordinators apply it: skipping it would leave this store
            // without it for good. It stays unapplied — the store as it was
            // before it — until this coordinator is upgraded and restarted.
            if !metNewerFormat {
                metNewerFormat = true
                log.error("raft: a log entry of format \(format), and this hako reads formats 1 to \(settings.newestEntryFormat): upgrade this coordinator; it applies nothing more until then (its store stays as it was before that entry)")
            }
            return RaftReplica.notHere
        }
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
            var batch = try own ?? StoreBatch.decode(entry: entry)
            let t1 = monotonicSeconds()
            // (An entry of unknown index leaves the mark where it is: a replay applies it again rather than skip one.)
            let mark = index > 0 ? AppliedMark(log: logID, index: index) : nil
            if let mark { batch.meta[RaftReplica.appliedKey] = mark.text }
            let applied = try commitWhenItCan(batch)
            let t2 = monotonicSeconds()
            spent.withLock {
                $0.store += t2 - t1
                if own == nil { $0.decode += t1 - t0 }
            }
            guard applied else { return RaftReplica.notHere }
            if let mark { appliedMark = mark }
            lastRefusal = ""
            if batch.meta.keys.contains(where: { $0.hasPrefix(RaftReplica.addressKeyPrefix) }) { loadAddressBook(batch.meta) }
            if batch.meta.keys.contains(where: { $0.hasPrefix(CoordinatorReads.metaPrefix) }) { loadReads(batch.meta) }
            if !batch.revokedSubjects.isEmpty || batch.certs.contains(where: { $0.revoked }) {
                do { try loadRevoked() } catch { log.error("raft: cannot read the revoked coordinator certificates: \(error)") }
            }
            if batch.meta[CARoot.metaKey] != nil || batch.meta[CARotation.metaKey] != nil { caApplied() }
            return RaftReplica.applied
        } catch {
            lastRefusal = "\(error)"
            log.error("raft: cannot apply a log entry: \(error)")
            return RaftReplica.refused
        }
    }

    /// Commits a committed entry's batch to the store. A failure of this
    /// machine's (disk full, I/O error) is not the entry's: it is neither
    /// skipped nor refused — every coordinator must apply every entry — but
    /// tried again, with backoff, until it passes. Meanwhile this Raft thread
    /// waits: this coordinator falls behind, and the others go on without it.
    /// False if the replica stops first (the entry then stays unapplied).
    /// A failure that is the change's own is thrown (the same everywhere).
    private func commitWhenItCan(_ batch: StoreBatch) throws -> Bool {
        var delay = 0.1
        var failing = false
        while true {
            do {
                try store.commit(batch)
                if failing { log.info("raft: the store takes log entries again: catching up") }
                return true
            } catch where store.lastFailureIsLocal {
                if !failing {
                    failing = true
                    log.error("raft: cannot apply a log entry to this coordinator's store: \(error); trying again until it can (the other coordinators go on meanwhile)")
                }
                if stopping.load(ordering: .relaxed) { return false }
                usleep(UInt32(delay * 1e6))
                delay = min(delay * 2, 2)
            }
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
            let meta = try store.loadMeta()
            appliedMark = AppliedMark(meta[RaftReplica.appliedKey])
            loadAddressBook(meta)
            loadReads(meta)
            try loadRevoked()
            caApplied()
            log.info("raft: store restored from a snapshot (\(bytes.count) bytes)")
            return 0
        } catch {
            log.error("raft: cannot restore a snapshot: \(error)")
            return 1
        }
    }

    private func caApplied() {
        do { caChanged(try store.loadMeta()) } catch { log.error("raft: cannot read the store's CA records: \(error)") }
    }

    /// Meta set once the store made before Raft is in the log (`StoredState.seedBatch`).
    public static let seededKey = "raft_seeded"

    /// Each coordinator's client address is replicated as meta `coordinator.<raft id>`;
    /// an empty one records its removal (`coordinator rm`).
    public static let addressKeyPrefix = "coordinator."

    /// The subject of a coordinator's certificate once bound to its Raft id (`memberBatch`).
    public static func certificateSubject(_ id: UInt64) -> String { "coordinator.\(id)" }

    /// The entry committed before a coordinator is added as a voter: its
    /// client address — which also lifts the refusal of a coordinator removed
    /// before under the same Raft id — and, for one that joined, its
    /// certificate bound to its Raft id, to be revoked if it is removed.
    /// (Coordinators started together from copies of one data directory share
    /// a certificate: theirs is never bound, they are refused by Raft id alone.)
    public static func memberBatch(id: UInt64, clientAddress: String, certificate: Certificate?, reads: CoordinatorReads? = nil) -> StoreBatch {
        var b = StoreBatch()
        b.meta[addressKeyPrefix + String(id)] = clientAddress
        if let reads { b.meta[CoordinatorReads.metaKey(id)] = reads.encoded }
        if let c = certificate {
            b.certs = [CertRecord(serial: c.serial, subject: certificateSubject(id), role: PKIRole.coordinator.rawValue, notAfter: c.notAfter, revoked: false)]
        }
        return b
    }

    /// The entry committed once a coordinator's removal is: from then on every
    /// coordinator that applied it refuses its Raft id and its bound certificate.
    /// Judged by committed entries only: a removal proposed and lost with its
    /// leader is never in the log, so it refuses no one.
    public static func removalBatch(id: UInt64) -> StoreBatch {
        var b = StoreBatch()
        b.meta[addressKeyPrefix + String(id)] = ""
        b.revokedSubjects = [certificateSubject(id)]
        return b
    }

    /// The entry that records what coordinator `id` reads.
    public static func readsBatch(id: UInt64, reads: CoordinatorReads) -> StoreBatch {
        var b = StoreBatch()
        b.meta[CoordinatorReads.metaKey(id)] = reads.encoded
        return b
    }

    func loadReads(_ meta: [String: String]) {
        stated.withLock { said in
            for (k, v) in meta where k.hasPrefix(CoordinatorReads.metaPrefix) {
                guard let id = UInt64(k.dropFirst(CoordinatorReads.metaPrefix.count)) else { continue }
                said[id] = CoordinatorReads.decode(v)
            }
        }
    }

    /// Raft ids removed and not added since, as applied here.
    public var removedIDs: Set<UInt64> { refused.withLock { $0.removedIDs } }

    func loadAddressBook(_ meta: [String: String]) {
        var removed: [UInt64: Bool] = [:]
        addressBook.withLock { book in
            for (k, v) in meta where k.hasPrefix(RaftReplica.addressKeyPrefix) {
                guard let id = UInt64(k.dropFirst(RaftReplica.addressKeyPrefix.count)) else { continue }
                if v.isEmpty { book[id] = nil } else { book[id] = v }
                removed[id] = v.isEmpty
            }
        }
        guard !removed.isEmpty else { return }
        let r = refused.withLock { r in
            for (id, gone) in removed {
                if gone { r.removedIDs.insert(id) } else { r.removedIDs.remove(id) }
            }
            return r
        }
        transport.setRefusals(r)
    }

    /// The serials of coordinator certificates revoked (at their removal), from the store.
    func loadRevoked() throws(ClusterError) {
        let serials = try store.revokedSerials(role: PKIRole.coordinator.rawValue)
        let r = refused.withLock { r in
            r.revokedSerials = serials
            return r
        }
        transport.setRefusals(r)
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withArrayOfCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { for c in copies { free(c) } }
    var ptrs: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) } + [nil]
    return ptrs.withUnsafeMutableBufferPointer { body(UnsafePointer($0.baseAddress)) }
}
