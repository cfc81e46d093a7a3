import FoundationEssentials
@testable import HakoCluster
import HakoImage
import Testing

/// The binary encoding of Raft log entries (format 3): every record a
/// `StoreBatch` carries comes back equal, whatever its optional, empty,
/// unicode or large values; a truncated or corrupt document is an error,
/// never a crash.
@Suite struct BinaryCoderTests {
    func roundTrip<T: Codable & Equatable>(_ value: T, userInfo: [CodingUserInfoKey: Any] = [:]) throws -> T {
        let bytes = try BinaryEncoder(userInfo: userInfo).encode(value)
        return try bytes.withUnsafeBytes { try BinaryDecoder(userInfo: userInfo).decode(T.self, from: $0) }
    }

    func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try BinaryDecoder().decode(type, from: $0) }
    }

    /// A spec with every optional set and every collection filled.
    static var fullSpec: ServiceSpec {
        var s = ServiceSpec(name: "web-π", image: "registry.example:5000/team/web:2026.12@sha256:" + String(repeating: "ab", count: 32))
        s.command = ["sh", "-c", "echo \"hello\" && sleep 1\n", ""]
        s.entrypoint = ""
        s.env = ["A=1", "UNICODE=日本語 🐳", "EMPTY="]
        s.workdir = "/srv/ü"
        s.user = "1000:1000"
        s.labels = ["com.example.a": "1", "empty": "", "ключ": "значение"]
        s.serviceLabels = ["com.docker.stack.namespace": "shop"]
        s.replicas = 10_000
        s.reservations = Resources(cpuMillis: 250, memory: 64 << 20)
        s.limits = Resources(cpuMillis: Int64.max, memory: 1 << 40)
        s.ports = ["8080:80", "53/udp"]
        s.ingress = ["9000:90"]
        s.constraints = ["node.labels.zone==a", "node.platform.arch!=arm"]
        s.platforms = ["linux/arm64", "linux/arm/v7"]
        s.restart = "always"
        s.restartCondition = .onFailure
        s.restartMaxAttempts = 7
        s.restartDelay = 0.125
        s.update.parallelism = 3
        s.update.delay = 1.5
        s.update.order = .startFirst
        s.update.failureAction = .rollback
        s.update.monitor = 1e-9
        s.update.maxFailureRatio = 0.3333333333333333
        s.rollback.parallelism = 0
        s.network = "host"
        s.stopSignal = "SIGUSR1"
        s.stopTimeout = 0
        s.healthCheck = HealthCheck(test: .shell("curl -f http://localhost/ || exit 1"), interval: .milliseconds(1500), timeout: .seconds(3),
                                    startPeriod: .zero, startInterval: .nanoseconds(1), retries: 5)
        s.placementPreferences = ["spread=node.labels.rack"]
        s.maxReplicasPerNode = 2
        s.mode = .globalJob
        s.secrets = [SecretReference(source: "db-password", id: "sec1", target: "db", uid: 0, gid: UInt32.max, mode: 0o400)]
        s.configs = [SecretReference(source: "nginx.conf", id: "cfg1", target: "/etc/nginx/nginx.conf")]
        s.container.hostname = "{{.Service.Name}}-{{.Task.Slot}}"
        s.container.mounts = [ServiceMount(type: .volume, source: "data", target: "/data", readOnly: true),
                              ServiceMount(type: .tmpfs, source: nil, target: "/tmp")]
        s.container.devices = [ServiceDevice(host: "/dev/i2c-1")]
        s.container.dns = ["10.0.0.2"]
        s.container.sysctls = ["net.core.somaxconn": "1024"]
        s.container.capAdd = ["NET_ADMIN"]
        s.container.readOnly = true
        s.container.initProcess = true
        s.container.pidsLimit = -1
        return s
    }

    static var fullBatch: StoreBatch {
        var b = StoreBatch()
        b.meta = ["cluster_id": "c1", "coordinator.2": "10.0.0.2:4270", "": "", "ünï": String(repeating: "x", count: 70_000)]
        var node = NodeRecord(id: "n1", name: "pi-1", hostname: "pi-1.local", platform: PlatformSpec(architecture: "arm", variant: "v7"),
                              labels: ["zone": "a"], capacity: Resources(cpuMillis: 4000, memory: 8 << 30), availability: .drain,
                              subnet: "10.214.1.0/24", address: "192.0.2.1", agentVersion: "0.9", created: 1_765_000_000.123456, updated: -1)
        node.agentLabels = ["gpu": "no"]
        node.devices = ["/dev/video0"]
        var bare = node
        bare.id = "n2"
        bare.agentLabels = nil
        bare.devices = nil
        bare.labels = [:]
        b.nodes = [node, bare]
        b.removedNodes = ["n0", ""]
        var svc = ServiceRecord(id: "s1", spec: fullSpec, version: 3, created: 1, updated: 2)
        svc.previousSpec = ServiceSpec(name: "web-π", image: "web:1")
        var status = UpdateStatus(state: .rollbackPaused, startedAt: 1_765_000_000, message: "update paused: task t3 failed")
        status.completedAt = nil
        status.failedTasks = ["t3"]
        status.batchInFlight = true
        status.nextBatchAt = 1_765_000_010.5
        svc.updateStatus = status
        b.services = [svc, ServiceRecord(id: "s2", spec: ServiceSpec(name: "bare", image: "busybox"), version: 1, created: 0, updated: 0)]
        b.removedServices = ["s0"]
        var running = TaskRecord(id: "t1", serviceID: "s1", serviceName: "web-π", slot: 1, version: 3, spec: fullSpec, nodeID: "n1",
                                 desired: .running, state: .running, message: "started ✓", containerID: String(repeating: "f", count: 64),
                                 exitCode: Int32.min, created: 1.5, updated: 2.25, notBefore: 0, ports: ["0.0.0.0:8080->80/tcp"],
                                 address: "10.214.1.7", placement: "score 0.42; next best n2 0.40")
        running.health = "healthy"
        running.servingSince = 3
        let pending = TaskRecord(id: "t2", serviceID: "s2", serviceName: "bare", slot: 0, version: 1, spec: ServiceSpec(name: "bare", image: "busybox"),
                                 nodeID: nil, desired: .shutdown, state: .pending, message: "", containerID: nil, exitCode: nil,
                                 created: 0, updated: 0, notBefore: Double.greatestFiniteMagnitude, ports: [], address: nil, placement: nil)
        b.tasks = [running, pending]
        b.removedTasks = ["t0"]
        b.leases = [LeaseRecord(subnet: "10.214.1.0/24", node: "n1")]
        b.releasedLeases = ["10.214.9.0/24"]
        b.tokens = [JoinTokenRecord(id: JoinTokenRecord.coordinatorPrefix + "k1", secretHash: "abc", created: 1, expires: 3601, usedAt: 5, usedBy: "n1"),
                    JoinTokenRecord(id: "k2", secretHash: "def", created: 1, expires: 3601, usedAt: nil, usedBy: nil)]
        b.removedTokens = ["k0"]
        b.certs = [CertRecord(serial: "0A1B", subject: "n1", role: "node", notAfter: 1_765_086_400, revoked: false),
                   CertRecord(serial: "FF", subject: "admin", role: "admin", notAfter: 0, revoked: true)]
        b.revokedSubjects = ["n0"]
        b.events = [ClusterEvent(time: 1_765_000_000.999, kind: "task", action: "running", id: "t1", name: "web-π.1", message: "on pi-1 🍓")]
        b.secrets = [SecretRecord(id: "sec1", kind: .secret, name: "db-password", labels: ["x": "y"], created: 1, updated: 1, keyID: "k",
                                  sealed: Data((0...255).map { UInt8($0) } + [0, 0, 0]), size: 259),
                     SecretRecord(id: "cfg1", kind: .config, name: "empty", labels: [:], created: 1, updated: 1, keyID: "k", sealed: Data(), size: 0)]
        b.removedSecrets = ["sec0"]
        return b
    }

    func expectEqual(_ a: StoreBatch, _ b: StoreBatch) {
        #expect(a.meta == b.meta)
        #expect(a.nodes == b.nodes)
        #expect(a.removedNodes == b.removedNodes)
        #expect(a.services == b.services)
        #expect(a.removedServices == b.removedServices)
        #expect(a.tasks == b.tasks)
        #expect(a.removedTasks == b.removedTasks)
        #expect(a.leases == b.leases)
        #expect(a.releasedLeases == b.releasedLeases)
        #expect(a.tokens == b.tokens)
        #expect(a.removedTokens == b.removedTokens)
        #expect(a.certs == b.certs)
        #expect(a.revokedSubjects == b.revokedSubjects)
        #expect(a.events == b.events)
        #expect(a.secrets == b.secrets)
        #expect(a.removedSecrets == b.removedSecrets)
    }

    /// Every record type of a batch, with optionals set and unset, empty and unicode strings, Data, extreme numbers.
    @Test func everyRecordOfABatchRoundTrips() throws {
        let b = Self.fullBatch
        let bytes = try BinaryEncoder().encode(b)
        let back = try bytes.withUnsafeBytes { try BinaryDecoder().decode(StoreBatch.self, from: $0) }
        expectEqual(back, b)
        // And as a log entry (specs apart from the tasks, format 3).
        let entry = try b.encodedEntry()
        #expect(Array(entry[0..<4]) == Array("HKB".utf8) + [3])
        #expect(entry.count % 8 == 0)
        expectEqual(try entry.withUnsafeBytes { p throws(ClusterError) in try StoreBatch.decode(entry: p) }, b)
        // The same batch as JSON (format 2) decodes to the same.
        expectEqual(try b.encodedEntryFormat2().withUnsafeBytes { p throws(ClusterError) in try StoreBatch.decode(entry: p) }, b)
    }

    @Test func anEmptyBatchRoundTrips() throws {
        let back = try decode(StoreBatch.self, try BinaryEncoder().encode(StoreBatch()))
        #expect(back.isEmpty)
        let entry = try StoreBatch().encodedEntry()
        #expect(try entry.withUnsafeBytes { p throws(ClusterError) in try StoreBatch.decode(entry: p) }.isEmpty)
    }

    struct Scalars: Codable, Equatable {
        var i: Int, i8: Int8, i16: Int16, i32: Int32, i64: Int64
        var u: UInt, u8: UInt8, u16: UInt16, u32: UInt32, u64: UInt64
        var d: [Double], f: Float, b: [Bool]
        var s: [String]
        var nested: [[String: [Int?]]]
        var optional: Int?
        var data: Data
    }

    @Test func numbersStringsAndNestingRoundTrip() throws {
        let large = String(repeating: "🐳 and text ", count: 100_000)
        for sign in [1, -1] {
            let v = Scalars(i: sign * Int.max, i8: Int8.min, i16: Int16.max, i32: Int32.min, i64: sign < 0 ? Int64.min : Int64.max,
                            u: UInt.max, u8: 255, u16: 0, u32: UInt32.max, u64: UInt64.max,
                            d: [0, -0.0, 1, -1, 0.1, 1e300, -5e-324, Double.infinity, -Double.infinity, 1_765_000_000, 1_765_000_000.5,
                                9_007_199_254_740_993, -9_007_199_254_740_992, Double(sign) * 4_503_599_627_370_496.5],
                            f: 3.25, b: [true, false],
                            s: ["", "a", "ü", "日本語", "🐳\u{0}nul", "line\nbreak \"quoted\" \\", large],
                            nested: [[:], ["a": [], "b": [nil, 1, nil], "": [Int.min]]], optional: nil, data: Data([0, 1, 2, 255]))
            let back = try roundTrip(v)
            #expect(back == v)
            #expect(back.d[1].sign == .minus, "-0.0 keeps its sign")
            #expect(back.s.last?.utf8.count == large.utf8.count)
        }
        // A NaN comes back a NaN.
        let nan = try roundTrip([Double.nan]).first
        #expect(nan?.isNaN == true)
        var big = Scalars(i: 0, i8: 0, i16: 0, i32: 0, i64: 0, u: 0, u8: 0, u16: 0, u32: 0, u64: 0, d: [], f: 0, b: [], s: [], nested: [],
                          optional: nil, data: Data(repeating: 7, count: 3 << 20))
        big.optional = 5
        #expect(try roundTrip(big) == big)
    }

    /// A type that encodes nothing, one that asks for its keyed container twice, and keys it does not know.
    struct Nothing: Codable, Equatable {
        init() {}
        init(from decoder: any Decoder) throws { _ = try decoder.container(keyedBy: BinaryStringKey.self) }
        func encode(to encoder: any Encoder) throws {}
    }

    struct TwoContainers: Codable, Equatable {
        var a: Int, b: String
        enum A: String, CodingKey { case a }
        enum B: String, CodingKey { case b }
        init(a: Int, b: String) { self.a = a; self.b = b }
        init(from decoder: any Decoder) throws {
            b = try decoder.container(keyedBy: B.self).decode(String.self, forKey: .b)
            a = try decoder.container(keyedBy: A.self).decode(Int.self, forKey: .a)
        }
        func encode(to encoder: any Encoder) throws {
            var x = encoder.container(keyedBy: A.self)
            try x.encode(a, forKey: .a)
            var y = encoder.container(keyedBy: B.self)
            try y.encode(b, forKey: .b)
        }
    }

    struct Older: Codable, Equatable { var b: String }

    @Test func containersAsCodableUsesThem() throws {
        #expect(try roundTrip([Nothing(), Nothing()]).count == 2)
        let two = TwoContainers(a: -3, b: "x")
        #expect(try roundTrip(two) == two)
        // A reader that knows fewer fields ignores the others (as format 2's JSON did).
        #expect(try decode(Older.self, try BinaryEncoder().encode(two)) == Older(b: "x"))
        // A field it needs and the document lacks is an error.
        #expect(throws: DecodingError.self) { try decode(TwoContainers.self, try BinaryEncoder().encode(Older(b: "x"))) }
        // A value of another type than asked for.
        #expect(throws: DecodingError.self) { try decode(Int8.self, try BinaryEncoder().encode(300)) }
        #expect(throws: DecodingError.self) { try decode(UInt.self, try BinaryEncoder().encode(-1)) }
        #expect(throws: DecodingError.self) { try decode(String.self, try BinaryEncoder().encode(1)) }
    }

    /// Every prefix of an entry, and entries with bytes changed: an error or a batch, never a crash.
    @Test func truncatedAndCorruptEntriesAreErrors() throws {
        var b = Self.fullBatch
        b.meta["ünï"] = "short"
        b.secrets[0].sealed = Data([1, 2, 3])
        let entry = try b.encodedEntry()
        func attempt(_ bytes: [UInt8]) -> Result<StoreBatch, ClusterError> {
            bytes.withUnsafeBytes { p in Result { () throws(ClusterError) in try StoreBatch.decode(entry: p) } }
        }
        // Cut anywhere before its key table ends: refused (zero padding may go).
        let tableEnd = entry.lastIndex { $0 != 0 }.map { $0 + 1 } ?? entry.count
        for n in 0..<tableEnd {
            let r = attempt(Array(entry[0..<n]))
            guard case .failure(let e) = r else {
                Issue.record("a prefix of \(n) of \(entry.count) bytes decoded")
                continue
            }
            if n >= 4 { #expect("\(e)".contains("unreadable log entry") || "\(e)".contains("not a store batch"), "\(e)") }
        }
        // Bytes changed at 400 positions spread over it, three ways: whatever happens, it is a result.
        var refused = 0
        for i in stride(from: 4, to: entry.count, by: max(1, entry.count / 400)) {
            for v: UInt8 in [0x00, 0xff, entry[i] ^ 0x5a] {
                var bad = entry
                bad[i] = v
                if case .failure = attempt(bad) { refused += 1 }
            }
        }
        #expect(refused > 0)
        // Garbage after the key table.
        var trailing = entry
        trailing[trailing.count - 1] = 1
        if entry.count > tableEnd { #expect { try attempt(trailing).get() } throws: { "\($0)".contains("after the key table") } }
        // A key table that claims more keys than bytes, lengths past the end: errors.
        #expect(throws: DecodingError.self) { try decode(StoreBatch.self, [5, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0x0f]) }
        #expect(throws: DecodingError.self) { try decode(StoreBatch.self, [0xff, 0xff, 0xff, 0x7f, 9]) }
        #expect(throws: DecodingError.self) { try decode(StoreBatch.self, [9, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0]) }
        #expect(throws: DecodingError.self) { try decode(String.self, [7, 0, 0, 0, 7, 2, 0xc3, 0]) }
        #expect { try decode(String.self, [8, 0, 0, 0, 7, 2, 0xc3, 0x28, 0]) } throws: { "\($0)".contains("not UTF-8") }
    }
}
