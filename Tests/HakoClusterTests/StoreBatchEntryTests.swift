import FoundationEssentials
@testable import HakoCluster
import Testing

/// The Raft log entry: a batch of placements carries its service's spec once,
/// not once per task; every format ever written still decodes; a coordinator
/// applies a decoded entry exactly as the batch it was made of.
@Suite struct StoreBatchEntryTests {
    func service(_ id: String, version: Int = 1, image: String = "registry.example:5000/team/web-frontend:2026.12") -> ServiceRecord {
        var spec = ServiceSpec(name: "svc-" + id, image: image)
        spec.env = ["A=1", "B=2"]
        spec.constraints = ["node.labels.zone==a"]
        spec.replicas = 5000
        return ServiceRecord(id: id, spec: spec, version: version, created: 1, updated: 1)
    }

    func task(_ id: String, _ s: ServiceRecord, slot: Int, node: String? = "n1") -> TaskRecord {
        TaskRecord(id: id, serviceID: s.id, serviceName: s.spec.name, slot: slot, version: s.version, spec: s.spec, nodeID: node,
                   desired: .running, state: node == nil ? .pending : .assigned, message: "", containerID: nil, exitCode: nil,
                   created: 1, updated: 2, notBefore: 0)
    }

    func decode(_ bytes: [UInt8]) throws -> StoreBatch {
        try bytes.withUnsafeBytes { b throws(ClusterError) in try StoreBatch.decode(entry: b) }
    }

    func occurrences(of needle: String, in bytes: [UInt8]) -> Int {
        let n = Array(needle.utf8)
        guard bytes.count >= n.count else { return 0 }
        return (0...(bytes.count - n.count)).filter { bytes[$0] == n[0] && Array(bytes[$0..<($0 + n.count)]) == n }.count
    }

    /// 5,000 placements of one new service: the spec once, a few hundred bytes a task.
    @Test func placementsCarryTheirSpecOnce() throws {
        let s = service("s1")
        var b = StoreBatch()
        b.services = [s]
        b.tasks = (1...5000).map { task("t\($0)", s, slot: $0) }
        let entry = try b.encodedEntry()
        #expect(Array(entry[0..<4]) == Array("HKB".utf8) + [3])
        #expect(entry.count % 8 == 0)
        #expect(occurrences(of: "web-frontend", in: entry) == 1)
        #expect(entry.count < 5000 * 100, "\(entry.count) bytes")
        let old = Array("HKB".utf8) + [1] + (try Wire.encodeJSON(b))
        let json = try b.encodedEntryFormat2()
        #expect(occurrences(of: "web-frontend", in: json) == 1)
        #expect(json.count * 2 < old.count, "format 2: \(json.count) bytes, format 1: \(old.count)")
        #expect(entry.count * 2 < json.count, "format 3: \(entry.count) bytes, format 2: \(json.count)")

        let back = try decode(entry)
        #expect(back.services == b.services)
        #expect(back.tasks == b.tasks)
    }

    /// Tasks of services the batch does not change (reports of running
    /// tasks, an old version during a rolling update): each service version's
    /// spec once, in the entry's own table.
    @Test func tasksOfUnchangedServicesAndOldVersions() throws {
        let v1 = service("s1", version: 1, image: "web:1"), v2 = service("s1", version: 2, image: "web:2"), other = service("s2", image: "db:9")
        var b = StoreBatch()
        b.services = [v2]
        b.tasks = [task("a", v1, slot: 1), task("b", v1, slot: 2), task("c", v2, slot: 3), task("d", other, slot: 1), task("e", other, slot: 2)]
        let entry = try b.encodedEntry()
        #expect(occurrences(of: "web:1", in: entry) == 1 && occurrences(of: "web:2", in: entry) == 1 && occurrences(of: "db:9", in: entry) == 1)
        let back = try decode(entry)
        #expect(back.tasks == b.tasks)
        #expect(back.tasks.map(\.spec.image) == ["web:1", "web:1", "web:2", "db:9", "db:9"])
    }

    /// A task put several times in one round (pending, then assigned) travels once, as its last state.
    @Test func aTaskPutTwiceTravelsOnceAsItsLastState() throws {
        let s = service("s1")
        var b = StoreBatch()
        b.services = [s]
        b.tasks = [task("t1", s, slot: 1, node: nil), task("t2", s, slot: 2), task("t1", s, slot: 1, node: "n7")]
        let back = try decode(try b.encodedEntry())
        #expect(back.tasks.map(\.id) == ["t2", "t1"])
        #expect(back.tasks.last?.nodeID == "n7" && back.tasks.last?.state == .assigned)
    }

    /// A decoded entry leaves a store exactly as the batch itself does.
    @Test func aDecodedEntryStoresWhatTheBatchStores() throws {
        let dir = TempDir("entry")
        let v1 = service("s1", version: 1), v2 = service("s1", version: 2, image: "web:2")
        var first = StoreBatch()
        first.meta = ["cluster_id": "x"]
        first.services = [v1]
        first.tasks = (1...20).map { task("t\($0)", v1, slot: $0, node: $0 % 2 == 0 ? "n1" : nil) }
        var second = StoreBatch()
        second.services = [v2]
        second.tasks = [task("t1", v1, slot: 1, node: "n2"), task("u1", v2, slot: 1)]
        second.removedTasks = ["t3"]
        second.events = [ClusterEvent(time: 5, kind: "service", action: "update", id: "s1", name: "svc-s1", message: "")]
        let direct = try Store(path: dir.path + "/direct.db"), replayed = try Store(path: dir.path + "/replayed.db")
        for b in [first, second] {
            try direct.commit(b)
            try replayed.commit(try decode(try b.encodedEntry()))
        }
        let a = try direct.load(), r = try replayed.load()
        #expect(a.tasks.sorted { $0.id < $1.id } == r.tasks.sorted { $0.id < $1.id })
        #expect(a.services == r.services && a.meta == r.meta && a.events.map(\.action) == r.events.map(\.action))
        #expect(r.tasks.count == 20)
    }

    /// Format 1 (every task with its whole spec), as coordinators before format 2 wrote it, still decodes.
    @Test func formatOneStillDecodes() throws {
        let s = service("s1")
        var b = StoreBatch()
        b.services = [s]
        b.tasks = [task("t1", s, slot: 1), task("t2", s, slot: 2)]
        var old = Array("HKB".utf8) + [1] + (try Wire.encodeJSON(b))
        #expect(occurrences(of: "web-frontend", in: old) == 3, "format 1 repeats the spec in every task")
        while old.count % 8 != 0 { old.append(0x20) }
        let back = try decode(old)
        #expect(back.tasks == b.tasks && back.services == b.services)
    }

    /// Format 2 (JSON, specs apart from the tasks), as coordinators before format 3 wrote it, still decodes.
    @Test func formatTwoStillDecodes() throws {
        let v1 = service("s1", version: 1, image: "web:1"), v2 = service("s1", version: 2, image: "web:2")
        var b = StoreBatch()
        b.services = [v2]
        b.tasks = [task("a", v1, slot: 1), task("b", v2, slot: 2, node: nil)]
        b.meta = ["coordinator.1": "10.0.0.1:4270"]
        let old = try b.encodedEntryFormat2()
        #expect(Array(old[0..<4]) == Array("HKB".utf8) + [2] && old.count % 8 == 0)
        #expect(old[4] == UInt8(ascii: "{"), "JSON")
        let back = try decode(old)
        #expect(back.tasks == b.tasks && back.services == b.services && back.meta == b.meta)
        // As written by a coordinator of before format 3 (the text itself, not today's encoder).
        let literal = Array("HKB".utf8) + [2] + Array(#"{"batch":{"meta":{"k":"v"},"nodes":[],"removedNodes":[],"services":[],"removedServices":[],"tasks":[],"removedTasks":["t9"],"leases":[],"releasedLeases":[],"tokens":[],"removedTokens":[],"certs":[],"revokedSubjects":[],"events":[]},"specs":[]}  "#.utf8)
        let lit = try decode(literal)
        #expect(lit.meta == ["k": "v"] && lit.removedTasks == ["t9"] && lit.secrets.isEmpty)
    }

    /// A format this hako does not know, and an entry whose task's spec it does not carry: refused whole.
    @Test func unknownFormatsAndMissingSpecsAreRefused() throws {
        let future = Array("HKB".utf8) + [9] + Array("{}      ".utf8)
        #expect { try decode(future) } throws: { "\($0)".contains("upgrade") }
        let broken = Array("HKB".utf8) + [2] + Array(#"{"batch":{"meta":{},"nodes":[],"removedNodes":[],"services":[],"removedServices":[],"tasks":[{"id":"t","serviceID":"s","serviceName":"web","slot":1,"version":1,"spec":null,"desired":"running","state":"running","message":"","created":0,"updated":0,"notBefore":0}],"removedTasks":[],"leases":[],"releasedLeases":[],"tokens":[],"removedTokens":[],"certs":[],"revokedSubjects":[],"events":[]},"specs":[]}"#.utf8)
        #expect { try decode(broken) } throws: { "\($0)".contains("does not carry") }
        // The same in format 3: a task whose service version the entry lacks.
        let s = service("s1")
        var b = StoreBatch()
        b.tasks = [task("t", s, slot: 1)]
        var content = b.entryContent()
        content.specs = []
        let binary = try BinaryEncoder(userInfo: [SpecOfTask.apart: true]).encode(content, prefix: Array("HKB".utf8) + [3], padding: 8)
        #expect { try decode(binary) } throws: { "\($0)".contains("does not carry") }
        #expect { try decode(Array("XYZ1".utf8)) } throws: { "\($0)".contains("not a store batch") }
    }
}
