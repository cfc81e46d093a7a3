@testable import HakoCluster
import Testing

@Suite struct StoreTests {
    func task(_ id: String, service: ServiceRecord, slot: Int, node: String?) -> TaskRecord {
        TaskRecord(id: id, serviceID: service.id, serviceName: service.spec.name, slot: slot, version: service.version, spec: service.spec,
                   nodeID: node, desired: .running, state: node == nil ? .pending : .assigned, message: "", containerID: nil, exitCode: nil,
                   created: 1, updated: 2, notBefore: 0)
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
        b.leases = [("10.88.0.0/24", "n1")]
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
