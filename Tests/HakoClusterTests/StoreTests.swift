@testable import HakoCluster
import HakoImage
import Testing

@Suite struct StoreTests {
    func task(_ id: String, service: ServiceRecord, slot: Int, node: String?) -> TaskRecord {
        TaskRecord(id: id, serviceID: service.id, serviceName: service.spec.name, slot: slot, version: service.version, spec: service.spec,
                   nodeID: node, desired: .running, state: node == nil ? .pending : .assigned, message: "", containerID: nil, exitCode: nil,
                   created: 1, updated: 2, notBefore: 0)
    }

    /// A snapshot's image of a newer schema (from a newer hako's coordinator)
    /// is refused before anything is replaced: the store is still this hako's.
    @Test func aSnapshotOfANewerSchemaIsRefusedWhole() throws {
        let dir = TempDir("store")
        let store = try Store(path: dir.path + "/c.db")
        var b = StoreBatch()
        b.meta = ["cluster_id": "x"]
        try store.commit(b)
        var other = StoreBatch()
        other.meta = ["cluster_id": "y"]
        let newer = try Store(path: dir.path + "/newer.db")
        try newer.commit(other)
        var image = try newer.serialize()
        try #require(image.count >= 64)
        let version = UInt32(Store.schemaVersion + 1)
        for i in 0..<4 { image[60 + i] = UInt8(truncatingIfNeeded: version >> (24 - 8 * UInt32(i))) }
        #expect { try image.withUnsafeBytes { b in try store.replace(with: b) } } throws: { "\($0)".contains("newer than this hako's") }
        #expect(try Store(path: dir.path + "/c.db").load().meta["cluster_id"] == "x")
        // This hako's own image is taken.
        let own = try newer.serialize()
        try own.withUnsafeBytes { b in try store.replace(with: b) }
        #expect(try store.load().meta["cluster_id"] == "y")
    }

    @Test func walAndRoundTrip() throws {
        let dir = TempDir("store")
        let store = try Store(path: dir.path + "/c.db")
        #expect(store.journalMode == "wal")
        var spec = ServiceSpec(name: "web", image: "busybox")
        spec.replicas = 2
        spec.constraints = ["node.labels.zone==a"]
        spec.reservations = Resources(cpuMillis: 250, memory: 64 << 20)
        let svc = ServiceRecord(id: "s1", spec: spec, version: 1, created: 1, updated: 1)
        let node = NodeRecord(id: "n1", name: "pi", hostname: "pi", platform: PlatformSpec(architecture: "arm", variant: "v7"),
                              labels: ["zone": "a"], capacity: Resources(cpuMillis: 4000, memory: 1 << 30), availability: .drain,
                              subnet: "10.88.0.0/24", address: "192.0.2.1:5", agentVersion: "1", created: 1, updated: 3)
        var b = StoreBatch()
        b.meta = ["cluster_id": "x"]
        b.nodes = [node]
        b.services = [svc]
        b.tasks = [task("t1", service: svc, slot: 1, node: "n1"), task("t2", service: svc, slot: 2, node: nil)]
        b.leases = [LeaseRecord(subnet: "10.88.0.0/24", node: "n1")]
        b.tokens = [JoinTokenRecord(id: "tk", secretHash: "h", created: 1, expires: 2, usedAt: nil, usedBy: nil)]
        b.certs = [CertRecord(serial: "ab", subject: "n1", role: "node", notAfter: 9, revoked: false)]
        try store.commit(b)

        let again = try Store(path: dir.path + "/c.db").load()
        #expect(again.meta["cluster_id"] == "x")
        #expect(again.nodes == [node])
        #expect(again.services == [svc])
        #expect(Set(again.tasks.map(\.id)) == ["t1", "t2"] && again.tasks.first { $0.id == "t1" }?.spec == spec)
        #expect(again.leases == ["10.88.0.0/24": "n1"])
        #expect(again.tokens.first?.id == "tk" && again.certs.first?.serial == "ab")

        // Revocation by subject; deletes; specs no task or service needs are pruned.
        var c = StoreBatch()
        c.revokedSubjects = ["n1"]
        c.removedTasks = ["t1", "t2"]
        c.removedServices = ["s1"]
        c.releasedLeases = ["10.88.0.0/24"]
        try store.commit(c)
        let after = try store.load()
        #expect(after.certs.first?.revoked == true && after.tasks.isEmpty && after.services.isEmpty && after.leases.isEmpty)
        #expect(try store.db.scalarInt("SELECT count(*) FROM specs") == 0)
    }

    /// What agents report (address, ports), why the node was chosen, and the
    /// event history, kept across a restart; the history bounded.
    @Test func reportsPlacementsAndEventsAreKept() throws {
        let dir = TempDir("store")
        let store = try Store(path: dir.path + "/c.db")
        let svc = ServiceRecord(id: "s1", spec: ServiceSpec(name: "web", image: "i"), version: 1, created: 1, updated: 1)
        var t = task("t1", service: svc, slot: 1, node: "n1")
        t.address = "10.88.1.2"
        t.ports = ["0.0.0.0:8080->80/tcp"]
        t.placement = "score 0.10 (cpu 5%, memory 0%, 0 of the service, 0 tasks)"
        var b = StoreBatch()
        b.services = [svc]
        b.tasks = [t]
        b.events = (0..<700).map { ClusterEvent(time: Double($0), kind: "task", action: "assigned", id: "t\($0)", name: "web.1", message: "") }
        try store.commit(b)
        var more = StoreBatch()
        more.events = (700..<1200).map { ClusterEvent(time: Double($0), kind: "task", action: "assigned", id: "t\($0)", name: "web.1", message: "") }
        try store.commit(more)
        let again = try Store(path: dir.path + "/c.db").load()
        #expect(again.tasks.first == t)
        #expect(again.events.count == Store.eventCapacity && again.events.first?.time == 200 && again.events.last?.time == 1199, "the last 1,000, oldest first")
        #expect(try store.db.scalarInt("SELECT count(*) FROM events") == Int64(Store.eventCapacity))
    }

    /// A database of the first schema is brought up to date in place.
    @Test func migratesTheFirstSchema() throws {
        let dir = TempDir("store")
        let db = try SQLiteDatabase(path: dir.path + "/c.db")
        try Store.createVersion1(db)
        try db.exec("INSERT INTO meta (key, value) VALUES ('cluster_id', 'old')")
        let store = try Store(path: dir.path + "/c.db")
        #expect(try store.db.scalarInt("PRAGMA user_version") == Store.schemaVersion)
        let s = try store.load()
        #expect(s.meta["cluster_id"] == "old" && s.events.isEmpty)
    }

    @Test func aBatchLandsWholeOrNotAtAll() throws {
        let dir = TempDir("store")
        let store = try Store(path: dir.path + "/c.db")
        let svc = ServiceRecord(id: "s1", spec: ServiceSpec(name: "web", image: "i"), version: 1, created: 1, updated: 1)
        var b = StoreBatch()
        b.services = [svc, ServiceRecord(id: "s2", spec: ServiceSpec(name: "web", image: "i"), version: 1, created: 1, updated: 1)]
        b.tasks = [task("t1", service: svc, slot: 1, node: nil)]
        #expect(throws: (any Error).self) { try store.commit(b) }   // the second service's name is taken
        let s = try store.load()
        #expect(s.services.isEmpty && s.tasks.isEmpty)
    }

    @Test func anEmptyBatchWritesNothing() throws {
        let dir = TempDir("store")
        let store = try Store(path: dir.path + "/c.db")
        let before = store.totalChanges
        try store.commit(StoreBatch())
        #expect(store.totalChanges == before)
    }
}
