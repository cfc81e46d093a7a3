// hako-cluster-bench: the cluster's in-process measurements for tools/bench-cluster.sh.
//   scheduler [--nodes N] [--tasks N] [--batch N] [--replicas N] [--raft N] DB
//       placements per second: the scheduler over N simulated nodes, each batch
//       of placements committed to the SQLite store in one transaction; with
//       --raft N, committed through Raft to N coordinators' stores instead (N
//       replicas in this process, mutual TLS over loopback, the leader's commit
//       waiting for a majority and its own store).
//   entry [--tasks N] [--rounds N] DB
//       one batch of N placements (as the scheduler bench makes them) as a
//       Raft log entry: its size and the time to encode it, decode it and
//       write it to a store, per format (2: JSON, 3: binary; best of N rounds).
//   snapshot [--nodes N] [--tasks N] [--rounds N] DB
//       a Raft snapshot of a store of N nodes and N tasks (services of 10
//       replicas, running, as the scheduler and the agents leave them): the
//       image's size and the time to take it (sqlite3_serialize) and to
//       restore it over a store (best of N rounds).
//   agents --coordinator ADDR --credentials DIR --state DIR [--nodes N]
//       N simulated nodes: the real agent code over real mutual TLS, with an
//       in-memory runtime (tasks "run" at once); runs until SIGTERM.
//   changes --coordinator ADDR --credentials DIR --node NAME [--count N] [--from I]
//       N changes of the cluster's state, each committed before the next is
//       asked (the node's label bench.change set to I, I+1, …: one store
//       batch, one Raft log entry each), over one admin connection.
#if canImport(Glibc)
import HakoImage
import Glibc
#endif
import HakoCluster
import HakoRuntime
import HakoSystem
import Synchronization

func arg(_ name: String, _ def: Int) -> Int {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: name), i + 1 < a.count, let v = Int(a[i + 1]) { return v }
    return def
}

func argString(_ name: String) -> String? {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: name), i + 1 < a.count { return a[i + 1] }
    return nil
}

func die(_ s: String) -> Never {
    writeStderr("hako-cluster-bench: \(s)\n")
    exit(1)
}

func schedulerBench() throws {
    let nodes = arg("--nodes", 1000), total = arg("--tasks", 200_000), batch = arg("--batch", 5000), replicas = arg("--replicas", 100)
    guard let db = CommandLine.arguments.last, db.hasSuffix(".db") else { die("scheduler: give a DB path ending in .db") }
    let store = try Store(path: db)
    let raft = arg("--raft", 0)
    let replicas3 = raft > 0 ? try raftReplicas(raft, dir: db + ".raft") : []
    defer { for r in replicas3 { r.stop() } }
    if raft > 0 && !replicas3.contains(where: { $0.status.role == .leader }) { die("no Raft leader among \(raft) replicas") }
    var rng = SeededRandom(seed: 1)
    var snap = ClusterSnapshot(nodes: (0..<nodes).map { i in
        let rec = NodeRecord(id: "node-\(i)", name: "pi-\(i)", hostname: "pi-\(i)",
                             platform: PlatformSpec(architecture: i % 4 == 0 ? "arm" : "arm64", variant: i % 4 == 0 ? "v7" : nil),
                             labels: ["zone": ["a", "b", "c"][i % 3]], capacity: Resources(cpuMillis: 4000, memory: 8 << 30),
                             availability: .active, subnet: "", address: "", agentVersion: "", created: 0, updated: 0)
        return SchedulerNode(record: rec, status: .ready,
                             load: NodeLoad(cpu: Double.random(in: 0...0.8, using: &rng), memoryTotal: 8 << 30,
                                            memoryAvailable: Int64.random(in: (2 << 30)...(7 << 30), using: &rng)))
    })
    let scheduler = Scheduler()
    var placed = 0, unplaced = 0
    var schedulingTime = 0.0, commitTime = 0.0
    var serviceIndex = 0
    var entryBytes = 0, entryBytesFormat2 = 0, entryBytesFormat1 = 0
    var sizing = 0.0
    func cpuSeconds() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }
    let cpu0 = cpuSeconds()
    let start = monotonicSeconds()
    while placed + unplaced < total {
        // One batch: whole services of `replicas` tasks, some with constraints and reservations.
        var tasks: [TaskRecord] = []
        var services: [ServiceRecord] = []
        while tasks.count < batch && placed + unplaced + tasks.count < total {
            var spec = ServiceSpec(name: "svc-\(serviceIndex)", image: "busybox")
            spec.replicas = replicas
            if serviceIndex % 3 == 1 { spec.constraints = ["node.labels.zone==a"] }
            if serviceIndex % 5 == 2 { spec.reservations = Resources(cpuMillis: 10, memory: 16 << 20) }
            let svc = ServiceRecord(id: "s\(serviceIndex)", spec: spec, version: 1, created: 0, updated: 0)
            services.append(svc)
            for slot in 1...replicas {
                tasks.append(TaskRecord(id: "t\(serviceIndex)-\(slot)", serviceID: svc.id, serviceName: spec.name, slot: slot, version: 1,
                                        spec: spec, nodeID: nil, desired: .running, state: .pending, message: "", containerID: nil,
                                        exitCode: nil, created: 0, updated: 0, notBefore: 0))
            }
            serviceIndex += 1
        }
        let t0 = monotonicSeconds()
        let placements = scheduler.schedule(SchedulingRequest.requests(for: tasks), on: &snap, using: &rng)
        let t1 = monotonicSeconds()
        var b = StoreBatch()
        b.services = services
        for (i, p) in placements.enumerated() {
            var t = tasks[i]
            if let n = p.nodeID { t.nodeID = n; t.state = .assigned; placed += 1 } else { t.message = p.reason; unplaced += 1 }
            b.tasks.append(t)
        }
        if raft > 0 {
            guard let leader = replicas3.first(where: { $0.status.role == .leader }) else { die("no Raft leader") }
            try leader.commit(b, timeout: 60)
        } else {
            try store.commit(b)
        }
        let t2 = monotonicSeconds()
        schedulingTime += t1 - t0
        commitTime += t2 - t1
        if raft > 0 && entryBytes == 0 {
            // The log entry of one batch, and what formats 2 (JSON) and 1 (JSON,
            // the spec in every task) made of it: measured once, outside the figures.
            entryBytes = try b.encodedEntry().count
            entryBytesFormat2 = try b.encodedEntryFormat2().count
            entryBytesFormat1 = try Wire.encodeJSON(b).count + 4
            sizing = monotonicSeconds() - t2
        }
    }
    let elapsed = monotonicSeconds() - start - sizing
    let cpu = cpuSeconds() - cpu0 - sizing
    let counts = snap.nodes.map(\.tasks)
    print("nodes=\(nodes) tasks=\(placed + unplaced) placed=\(placed) unplaced=\(unplaced) batch=\(batch) raft=\(raft)")
    func ms(_ s: Double) -> Int { Int((s * 1000).rounded()) }
    // Per CPU second too: on a shared machine the wall clock also counts other programs' time.
    print("placements_per_cpu_s=\(Int(Double(placed + unplaced) / cpu)) cpu_ms=\(ms(cpu))")
    print("placements_per_s=\(Int(Double(placed + unplaced) / elapsed)) scheduler_only_per_s=\(Int(Double(placed + unplaced) / schedulingTime)) commit_ms=\(ms(commitTime)) total_ms=\(ms(elapsed))")
    print("spread: min=\(counts.min() ?? 0) max=\(counts.max() ?? 0) tasks per node")
    if raft > 0 {
        print("entry_bytes=\(entryBytes) format2_entry_bytes=\(entryBytesFormat2) format1_entry_bytes=\(entryBytesFormat1) per_batch_of=\(batch)")
        // Where a batch's commit went: the leader's encoding and store write,
        // the followers' decoding and store writes (each on its own Raft
        // thread, beside the leader's wait), and the rest of the leader's wait
        // (libraft's append and fsync on a majority, TLS over loopback, queues).
        let batches = Double((total + batch - 1) / batch)
        guard let leader = replicas3.first(where: { $0.status.role == .leader }) else { return }
        let l = leader.costs
        let followers = replicas3.filter { $0 !== leader }.map(\.costs)
        let fDecode = followers.map(\.decode).reduce(0, +) / Double(max(1, followers.count))
        let fStore = followers.map(\.store).reduce(0, +) / Double(max(1, followers.count))
        print("per_batch_ms: commit=\(fmt(commitTime / batches)) leader_encode=\(fmt(l.encode / batches)) leader_store=\(fmt(l.store / batches)) follower_decode=\(fmt(fDecode / batches)) follower_store=\(fmt(fStore / batches)) commit_rest=\(fmt((commitTime - l.encode - l.store) / batches))")
    }
}

/// Milliseconds, one decimal below 10.
func fmt(_ seconds: Double) -> String {
    let tenths = Int((seconds * 10_000).rounded())
    return tenths < 100 ? "\(tenths / 10).\(tenths % 10)" : "\((tenths + 5) / 10)"
}

/// One batch of `--tasks` placements as a log entry, per format: bytes, encode, decode, store write (ms, best of `--rounds`).
func entryBench() throws {
    let total = arg("--tasks", 5000), rounds = arg("--rounds", 5), replicas = 100
    guard let db = CommandLine.arguments.last, db.hasSuffix(".db") else { die("entry: give a DB path ending in .db") }
    var b = StoreBatch()
    var serviceIndex = 0
    while b.tasks.count < total {
        var spec = ServiceSpec(name: "svc-\(serviceIndex)", image: "busybox")
        spec.replicas = replicas
        if serviceIndex % 3 == 1 { spec.constraints = ["node.labels.zone==a"] }
        let svc = ServiceRecord(id: "s\(serviceIndex)", spec: spec, version: 1, created: 1_765_000_000.25, updated: 1_765_000_000.25)
        b.services.append(svc)
        for slot in 1...replicas where b.tasks.count < total {
            b.tasks.append(TaskRecord(id: "t\(serviceIndex)-\(slot)", serviceID: svc.id, serviceName: spec.name, slot: slot, version: 1,
                                      spec: spec, nodeID: "node-\((serviceIndex * 7 + slot) % 1000)", desired: .running, state: .assigned,
                                      message: "", containerID: nil, exitCode: nil, created: 1_765_000_000.5, updated: 1_765_000_000.5,
                                      notBefore: 0))
        }
        serviceIndex += 1
    }
    func best(_ body: () throws -> Void) rethrows -> Double {
        var out = Double.infinity
        for _ in 0..<rounds {
            let t0 = monotonicSeconds()
            try body()
            out = min(out, monotonicSeconds() - t0)
        }
        return out
    }
    var round = 0
    let formats: [(Int, () throws -> [UInt8])] = [(2, { try b.encodedEntryFormat2() }), (3, { try b.encodedEntry() })]
    for (format, encode) in formats {
        let bytes = try encode()
        let enc = try best { _ = try encode() }
        let dec = try best { _ = try bytes.withUnsafeBytes { p throws(ClusterError) in try StoreBatch.decode(entry: p) } }
        let decoded = try bytes.withUnsafeBytes { p throws(ClusterError) in try StoreBatch.decode(entry: p) }
        var store = Double.infinity
        for _ in 0..<rounds {
            round += 1
            let fresh = try Store(path: String(db.dropLast(3)) + "-\(round).db")
            let t0 = monotonicSeconds()
            try fresh.commit(decoded)
            store = min(store, monotonicSeconds() - t0)
        }
        print("format=\(format) tasks=\(b.tasks.count) bytes=\(bytes.count) encode_ms=\(fmt(enc)) decode_ms=\(fmt(dec)) store_ms=\(fmt(store))")
    }
}

func snapshotBench() throws {
    let nodes = arg("--nodes", 10), total = arg("--tasks", 1000), rounds = arg("--rounds", 5), replicas = 10
    guard let db = CommandLine.arguments.last, db.hasSuffix(".db") else { die("snapshot: give a DB path ending in .db") }
    let store = try Store(path: db)
    var b = StoreBatch()
    b.meta = ["cluster_id": "benchcluster01"]
    b.nodes = (0..<nodes).map { i in
        NodeRecord(id: "node-\(i)", name: "pi-\(i)", hostname: "pi-\(i)", platform: PlatformSpec(architecture: "arm64"),
                   labels: ["zone": ["a", "b", "c"][i % 3]], capacity: Resources(cpuMillis: 4000, memory: 8 << 30),
                   availability: .active, subnet: "10.88.\(i).0/24", address: "10.0.0.\(i + 1)", agentVersion: "bench", created: 1, updated: 1)
    }
    var serviceIndex = 0
    while b.tasks.count < total {
        var spec = ServiceSpec(name: "svc-\(serviceIndex)", image: "busybox")
        spec.replicas = replicas
        spec.command = ["sleep", "3600"]
        spec.env = ["A=1", "B=2"]
        let svc = ServiceRecord(id: "s\(serviceIndex)", spec: spec, version: 1, created: 1_765_000_000.25, updated: 1_765_000_000.25)
        b.services.append(svc)
        for slot in 1...replicas where b.tasks.count < total {
            b.tasks.append(TaskRecord(id: "t\(serviceIndex)-\(slot)", serviceID: svc.id, serviceName: spec.name, slot: slot, version: 1,
                                      spec: spec, nodeID: "node-\((serviceIndex * 7 + slot) % nodes)", desired: .running, state: .running,
                                      message: "", containerID: "c\(serviceIndex)x\(slot)", exitCode: nil, created: 1_765_000_000.5,
                                      updated: 1_765_000_000.5, notBefore: 0))
        }
        serviceIndex += 1
    }
    try store.commit(b)
    var take = Double.infinity, restore = Double.infinity
    var image: [UInt8] = []
    let target = try Store(path: String(db.dropLast(3)) + "-restored.db")
    for _ in 0..<rounds {
        let t0 = monotonicSeconds()
        image = try store.serialize()
        take = min(take, monotonicSeconds() - t0)
        let t1 = monotonicSeconds()
        try image.withUnsafeBytes { try target.replace(with: $0) }
        restore = min(restore, monotonicSeconds() - t1)
    }
    print("nodes=\(nodes) tasks=\(b.tasks.count) services=\(b.services.count) image_bytes=\(image.count) take_ms=\(fmt(take)) restore_ms=\(fmt(restore))")
}

/// `n` replicas of a fresh store on loopback ports, once one of them leads.
func raftReplicas(_ n: Int, dir: String) throws -> [RaftReplica] {
    let now = Timestamp.now().secondsSince1970
    let ca = try CertificateAuthority.create(clusterID: "benchcluster01", now: now)
    let base = UInt16(30000 + Int(getpid()) % 20000)
    let peers = (0..<n).map { (UInt64($0 + 1), "127.0.0.1:\(base + UInt16($0))") }
    var out: [RaftReplica] = []
    for i in 0..<n {
        let data = "\(dir)/c\(i)"
        try FS.makeDirectories(data, mode: 0o700)
        var b = StoreBatch()
        b.meta = ["cluster_id": "benchcluster01"]
        try Store(path: data + "/cluster.db").commit(b)
        let key = try PrivateKey.generate()
        let cert = try ca.issue(key: key, commonName: "coordinator", role: .coordinator, notBefore: now - 300, notAfter: now + 86400, sans: ["127.0.0.1"])
        var s = RaftSettings(id: UInt64(i + 1), address: Endpoint(host: "127.0.0.1", port: base + UInt16(i)))
        s.bootstrap = peers
        // Three replicas share this process's CPU with the scheduler: a long
        // election timeout keeps a busy moment from costing the leadership.
        s.electionTimeout = 5
        s.heartbeat = 0.2
        let creds = RaftTransport.Credentials(certificate: cert, key: key, chain: ca.certificate, trust: TrustBundle([ca.certificate]), clusterID: "benchcluster01")
        out.append(try RaftReplica(settings: s, dataDir: data, databasePath: data + "/cluster.db", tls: creds, log: .silent) { _ in })
    }
    let until = monotonicSeconds() + 15
    while monotonicSeconds() < until, !out.contains(where: { $0.status.role == .leader }) { usleep(20_000) }
    // Each states what it reads, as coordinators do: the leader then writes the newest format.
    if let leader = out.first(where: { $0.status.role == .leader }) {
        for r in out { try leader.commit(RaftReplica.readsBatch(id: r.settings.id, reads: r.ownReads), timeout: 10) }
    }
    return out
}

/// Tasks "run" the moment they start; nothing touches the kernel.
final class MemoryRuntime: TaskRuntime, @unchecked Sendable {
    let tasks = Mutex<[String: ObservedTask]>([:])
    func observe() throws -> (tasks: [ObservedTask], running: Int) {
        tasks.withLock { (Array($0.values), $0.values.filter { $0.status == .running }.count) }
    }
    func start(_ a: Assignment, node: String, subnet: String, overlay: ClusterNetworkOptions?, networks: [String: NodeNetwork],
               files: [ContainerFile]) throws -> String {
        let id = hexString(randomBytes(32))
        tasks.withLock { $0[id] = ObservedTask(taskID: a.taskID, containerID: id, status: .running) }
        return id
    }
    func startExisting(_ c: String, files: [ContainerFile]) throws { tasks.withLock { $0[c]?.status = .running } }
    func stop(_ c: String, timeout: Int?) throws { tasks.withLock { $0[c]?.status = .exited; $0[c]?.exitCode = 143 } }
    func remove(_ c: String) throws { _ = tasks.withLock { $0.removeValue(forKey: c) } }
    func logs(_ c: String, tail: Int, since: Double?, until: Double?, maxBytes: Int) throws -> (entries: [(time: String, stream: String, text: String)], truncated: Bool) { ([], false) }
}

struct FixedProbe: NodeProbe {
    func capacity() -> Resources { Resources(cpuMillis: 4000, memory: 4 << 30) }
    mutating func load(containers: Int) -> NodeLoad { NodeLoad(cpu: 0.1, load1: 0.2, memoryTotal: 4 << 30, memoryAvailable: 3 << 30, containers: containers) }
}

final class AgentBox: @unchecked Sendable {
    let agent: Agent
    init(_ a: Agent) { agent = a }
}

func agentsBench() throws {
    guard let coord = argString("--coordinator"), let creds = argString("--credentials"), let state = argString("--state") else {
        die("agents: --coordinator ADDR --credentials DIR --state DIR")
    }
    let n = arg("--nodes", 10)
    Daemon.blockStopSignals()
    var boxes: [AgentBox] = []
    for i in 0..<n {
        var c = AgentConfig()
        c.stateDir = "\(state)/sim-\(i)"
        c.name = "sim-\(i)"
        c.observeInterval = 1
        if !FS.exists(c.stateDir + "/node.json") {
            let admin = try ClusterClient.admin(AdminCredentials(dir: creds), address: coord)
            let token = try admin.request(MessageType.tokenCreate, TokenCreateRequest(ttl: 600), as: TokenReply.self).token
            _ = try Agent.join(token: token, coordinator: coord, config: c, capacity: FixedProbe().capacity(), log: .silent)
        }
        boxes.append(AgentBox(try Agent(config: c, runtime: MemoryRuntime(), probe: FixedProbe(), log: ClusterLog(component: "sim-\(i)", level: .warning))))
    }
    let done = Atomic<Int>(0)
    for b in boxes {
        let box = Unmanaged.passRetained(b).toOpaque()
        var t = pthread_t()
        _ = pthread_create(&t, nil, { arg in
            guard let arg else { return nil }
            Unmanaged<AgentBox>.fromOpaque(arg).takeRetainedValue().agent.run()
            return nil
        }, box)
        pthread_detach(t)
    }
    print("\(n) simulated agents running")
    let all = boxes
    Daemon.onStopSignal { _ in
        for b in all { b.agent.stop() }
        done.store(1, ordering: .sequentiallyConsistent)
    }
    while done.load(ordering: .sequentiallyConsistent) == 0 { usleep(100_000) }
    usleep(300_000)
}

func changesBench() throws {
    guard let coord = argString("--coordinator"), let creds = argString("--credentials"), let node = argString("--node") else {
        die("changes: --coordinator ADDR --credentials DIR --node NAME [--count N] [--from I]")
    }
    let count = arg("--count", 1000), from = arg("--from", 0)
    let client = try ClusterClient.admin(AdminCredentials(dir: creds), address: coord)
    let start = monotonicSeconds()
    for i in from..<(from + count) {
        _ = try client.request(MessageType.nodeUpdate, NodeUpdateRequest(node: node, labelAdd: ["bench.change": String(i)]), as: NodeView.self)
    }
    print("changes=\(count) per_s=\(Int(Double(count) / (monotonicSeconds() - start)))")
}

do {
    switch CommandLine.arguments.dropFirst().first {
    case "scheduler": try schedulerBench()
    case "entry": try entryBench()
    case "snapshot": try snapshotBench()
    case "agents": try agentsBench()
    case "changes": try changesBench()
    default: die("usage: hako-cluster-bench scheduler|entry|snapshot|agents|changes …")
    }
} catch {
    die("\(error)")
}
