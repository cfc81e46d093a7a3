import HakoImage
import FoundationEssentials
import HakoSystem

/// A single-use join token as stored: only a hash of its secret.
public struct JoinTokenRecord: Codable, Sendable, Equatable {
    public var id: String
    public var secretHash: String
    public var created: Double
    public var expires: Double
    public var usedAt: Double?
    public var usedBy: String?
    /// Prefixed to the id of a coordinator's token in the store.
    public static let coordinatorPrefix = "coordinator:"
}

/// A certificate the CA issued: what revocation and the handshake check need.
public struct CertRecord: Codable, Sendable, Equatable {
    /// Hex, as OpenSSL prints it.
    public var serial: String
    /// The node id, or "admin" / "coordinator".
    public var subject: String
    public var role: String
    public var notAfter: Double
    public var revoked: Bool
}

/// Everything the coordinator keeps, as loaded at start.
public struct StoredState: Sendable {
    public var meta: [String: String] = [:]
    public var nodes: [NodeRecord] = []
    public var services: [ServiceRecord] = []
    public var tasks: [TaskRecord] = []
    /// subnet → node id
    public var leases: [String: String] = [:]
    public var tokens: [JoinTokenRecord] = []
    public var certs: [CertRecord] = []
    /// The last `Store.eventCapacity` events, oldest first.
    public var events: [ClusterEvent] = []
    /// Secrets and configs, sealed.
    public var secrets: [SecretRecord] = []
    /// Cluster networks (`network create`).
    public var networks: [NetworkRecord] = []
}

/// A subnet leased to a node.
public struct LeaseRecord: Codable, Sendable, Equatable {
    public var subnet: String
    public var node: String
    public init(subnet: String, node: String) {
        self.subnet = subnet
        self.node = node
    }
}

/// Changes written in one transaction. With several coordinators it is also
/// the Raft log entry (`StoreBatch+Entry.swift`): encoded whole, so a field
/// added here is replicated with no further code.
public struct StoreBatch: Codable, Sendable {
    public var meta: [String: String] = [:]
    public var nodes: [NodeRecord] = []
    public var removedNodes: [String] = []
    public var services: [ServiceRecord] = []
    public var removedServices: [String] = []
    public var tasks: [TaskRecord] = []
    public var removedTasks: [String] = []
    public var leases: [LeaseRecord] = []
    public var releasedLeases: [String] = []
    public var tokens: [JoinTokenRecord] = []
    public var removedTokens: [String] = []
    public var certs: [CertRecord] = []
    /// Revokes every certificate issued to these subjects.
    public var revokedSubjects: [String] = []
    /// Appended to the event history (the oldest beyond its bound dropped).
    public var events: [ClusterEvent] = []
    /// Secrets and configs (sealed: the log and the database never hold their plaintext).
    public var secrets: [SecretRecord] = []
    public var removedSecrets: [String] = []
    /// Cluster networks (`network create|rm`).
    public var networks: [NetworkRecord] = []
    public var removedNetworks: [String] = []

    public init() {}

    enum CodingKeys: String, CodingKey {
        case meta, nodes, removedNodes, services, removedServices, tasks, removedTasks, leases, releasedLeases, tokens, removedTokens
        case certs, revokedSubjects, events, secrets, removedSecrets, networks, removedNetworks
    }

    /// Fields an older coordinator's entry lacks take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        meta = try c.decode([String: String].self, forKey: .meta)
        nodes = try c.decode([NodeRecord].self, forKey: .nodes)
        removedNodes = try c.decode([String].self, forKey: .removedNodes)
        services = try c.decode([ServiceRecord].self, forKey: .services)
        removedServices = try c.decode([String].self, forKey: .removedServices)
        tasks = try c.decode([TaskRecord].self, forKey: .tasks)
        removedTasks = try c.decode([String].self, forKey: .removedTasks)
        leases = try c.decode([LeaseRecord].self, forKey: .leases)
        releasedLeases = try c.decode([String].self, forKey: .releasedLeases)
        tokens = try c.decode([JoinTokenRecord].self, forKey: .tokens)
        removedTokens = try c.decode([String].self, forKey: .removedTokens)
        certs = try c.decode([CertRecord].self, forKey: .certs)
        revokedSubjects = try c.decode([String].self, forKey: .revokedSubjects)
        events = try c.decode([ClusterEvent].self, forKey: .events)
        secrets = try c.decodeIfPresent([SecretRecord].self, forKey: .secrets) ?? []
        removedSecrets = try c.decodeIfPresent([String].self, forKey: .removedSecrets) ?? []
        networks = try c.decodeIfPresent([NetworkRecord].self, forKey: .networks) ?? []
        removedNetworks = try c.decodeIfPresent([String].self, forKey: .removedNetworks) ?? []
    }

    public var isEmpty: Bool {
        meta.isEmpty && nodes.isEmpty && removedNodes.isEmpty && services.isEmpty && removedServices.isEmpty
            && tasks.isEmpty && removedTasks.isEmpty && leases.isEmpty && releasedLeases.isEmpty && tokens.isEmpty
            && removedTokens.isEmpty && certs.isEmpty && revokedSubjects.isEmpty && events.isEmpty && secrets.isEmpty && removedSecrets.isEmpty
            && networks.isEmpty && removedNetworks.isEmpty
    }
}

/// The coordinator's state in one SQLite database (WAL mode). It is written
/// only when desired or observed state changes — heartbeats never reach it.
public final class Store {
    let db: SQLiteDatabase
    public static let schemaVersion: Int64 = 5
    /// Events kept (`hako cluster events`): the history an operator needs
    /// after a restart, bounded.
    public static let eventCapacity = 1000

    public init(path: String) throws(ClusterError) {
        db = try SQLiteDatabase(path: path)
        // WAL: readers never block the writer, one fsync per commit at most;
        // NORMAL sync: a power cut loses at most the last commits, never the file.
        try db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;")
        try migrate()
        try addRolloutColumns()
    }

    /// Hands this connection's page cache back to the heap (it refills from
    /// the file as needed): after loading the store, or a burst of writes.
    public func releaseCache() { try? db.exec("PRAGMA shrink_memory") }

    /// Whether the last failed write failed for this machine's reasons (disk
    /// full, I/O error) rather than the change's own.
    public var lastFailureIsLocal: Bool { db.lastFailureIsLocal }

    /// The journal mode in effect ("wal").
    public var journalMode: String {
        (try? { () throws(ClusterError) -> String in
            let s = try db.prepare("PRAGMA journal_mode")
            defer { s.reset() }
            return try s.step() ? s.text(0) : ""
        }()) ?? ""
    }

    /// Rows changed through this connection: tests use it to prove heartbeats write nothing.
    public var totalChanges: Int64 { db.totalChanges }

    func migrate() throws(ClusterError) {
        let v = try db.scalarInt("PRAGMA user_version")
        if v == Store.schemaVersion { return }
        guard v <= Store.schemaVersion else { throw .store("\(db.path): schema version \(v) is newer than this hako (\(Store.schemaVersion))") }
        if v == 0 { try Store.createVersion1(db) }
        if v < 2 { try Store.migrateToVersion2(db) }
        // 3: the labels the agent reported, apart from the admin's changes (`node update --label-add`).
        if v < 3 {
            try db.exec("""
            BEGIN;
            ALTER TABLE nodes ADD COLUMN agent_labels TEXT;
            PRAGMA user_version = 3;
            COMMIT;
            """)
        }
        // 4: secrets and configs, sealed (SecretBox); a name is unique within its kind.
        if v < 4 {
            try db.exec("""
            BEGIN;
            CREATE TABLE secrets (
                id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL,
                created REAL NOT NULL, updated REAL NOT NULL, key_id TEXT NOT NULL, sealed BLOB NOT NULL, size INTEGER NOT NULL,
                UNIQUE (kind, name));
            PRAGMA user_version = 4;
            COMMIT;
            """)
        }
        // 5: cluster networks; a name, a CIDR and a VNI each belong to one network.
        try db.exec("""
        BEGIN;
        CREATE TABLE networks (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, subnet TEXT NOT NULL UNIQUE, node_prefix INTEGER NOT NULL,
            vni INTEGER NOT NULL UNIQUE, attachable INTEGER NOT NULL, labels TEXT NOT NULL, created REAL NOT NULL, leases TEXT NOT NULL);
        ALTER TABLE tasks ADD COLUMN network_addresses TEXT;
        PRAGMA user_version = 5;
        COMMIT;
        """)
    }

    /// A service's previous spec and update status, and when a task began to
    /// serve (issue 15's rolling updates), added where missing: columns
    /// checked by name, so the step is independent of the schema version.
    func addRolloutColumns() throws(ClusterError) {
        func columns(_ table: String) throws(ClusterError) -> Set<String> {
            let s = try db.prepare("PRAGMA table_info(\(table))")
            defer { s.reset() }
            var out = Set<String>()
            while try s.step() { out.insert(s.text(1)) }
            return out
        }
        var sql = ""
        let services = try columns("services")
        if !services.contains("previous_spec") { sql += "ALTER TABLE services ADD COLUMN previous_spec TEXT;\n" }
        if !services.contains("update_status") { sql += "ALTER TABLE services ADD COLUMN update_status TEXT;\n" }
        if !(try columns("tasks")).contains("serving_since") { sql += "ALTER TABLE tasks ADD COLUMN serving_since REAL;\n" }
        guard !sql.isEmpty else { return }
        try db.exec("BEGIN;\n" + sql + "COMMIT;")
    }

    static func migrateToVersion2(_ db: SQLiteDatabase) throws(ClusterError) {
        // 2: what agents report of a running task (its address and published
        // ports), why the scheduler chose its node, and the event history,
        // kept with the rest of the state.
        try db.exec("""
        BEGIN;
        ALTER TABLE tasks ADD COLUMN address TEXT;
        ALTER TABLE tasks ADD COLUMN ports TEXT;
        ALTER TABLE tasks ADD COLUMN placement TEXT;
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, kind TEXT NOT NULL, action TEXT NOT NULL,
            id TEXT NOT NULL, name TEXT NOT NULL, message TEXT NOT NULL);
        PRAGMA user_version = 2;
        COMMIT;
        """)
    }

    static func createVersion1(_ db: SQLiteDatabase) throws(ClusterError) {
        try db.exec("""
        BEGIN;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE nodes (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, hostname TEXT NOT NULL, platform TEXT NOT NULL,
            labels TEXT NOT NULL, cpu_millis INTEGER NOT NULL, memory INTEGER NOT NULL,
            availability TEXT NOT NULL, subnet TEXT NOT NULL, address TEXT NOT NULL, agent_version TEXT NOT NULL,
            created REAL NOT NULL, updated REAL NOT NULL);
        CREATE TABLE services (
            id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, version INTEGER NOT NULL,
            created REAL NOT NULL, updated REAL NOT NULL);
        CREATE TABLE specs (
            service_id TEXT NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL,
            PRIMARY KEY (service_id, version));
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY, service_id TEXT NOT NULL, service_name TEXT NOT NULL, slot INTEGER NOT NULL,
            version INTEGER NOT NULL, node_id TEXT, desired TEXT NOT NULL, state TEXT NOT NULL,
            message TEXT NOT NULL, container_id TEXT, exit_code INTEGER,
            created REAL NOT NULL, updated REAL NOT NULL, not_before REAL NOT NULL);
        CREATE INDEX tasks_by_spec ON tasks (service_id, version);
        CREATE TABLE leases (subnet TEXT PRIMARY KEY, node_id TEXT NOT NULL UNIQUE);
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
            used_at REAL, used_by TEXT);
        CREATE TABLE certs (
            serial TEXT PRIMARY KEY, subject TEXT NOT NULL, role TEXT NOT NULL, not_after REAL NOT NULL,
            revoked INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX certs_by_subject ON certs (subject);
        PRAGMA user_version = 1;
        COMMIT;
        """)
    }

    // MARK: snapshots (Raft)

    /// The whole database, for a Raft snapshot.
    public func serialize() throws(ClusterError) -> [UInt8] { try db.serialize() }

    /// Replaces the whole database by a snapshot's image, then brings its
    /// schema up to date. An image of a newer schema (a snapshot from a newer
    /// hako's coordinator) is refused before anything is replaced.
    public func replace(with image: UnsafeRawBufferPointer) throws(ClusterError) {
        // The database header's user_version: 4 bytes, big-endian, at offset 60.
        if image.count >= 64 {
            let version = image[60..<64].reduce(Int64(0)) { $0 << 8 | Int64($1) }
            guard version <= Store.schemaVersion else {
                throw .store("a snapshot of schema version \(version), newer than this hako's (\(Store.schemaVersion)): upgrade this coordinator")
            }
        }
        try db.replace(with: image)
        try migrate()
        try addRolloutColumns()
    }

    // MARK: loading

    /// The meta table alone.
    public func loadMeta() throws(ClusterError) -> [String: String] {
        var out: [String: String] = [:]
        let s = try db.prepare("SELECT key, value FROM meta")
        while try s.step() { out[s.text(0)] = s.text(1) }
        return out
    }

    /// The serials of the revoked certificates of one role.
    public func revokedSerials(role: String) throws(ClusterError) -> Set<String> {
        var out = Set<String>()
        let s = try db.prepare("SELECT serial FROM certs WHERE revoked = 1 AND role = ?1").bind([.text(role)])
        while try s.step() { out.insert(s.text(0)) }
        return out
    }

    public func load() throws -> StoredState {
        var out = StoredState()
        var s = try db.prepare("SELECT key, value FROM meta")
        while try s.step() { out.meta[s.text(0)] = s.text(1) }

        s = try db.prepare("SELECT id, name, hostname, platform, labels, cpu_millis, memory, availability, subnet, address, agent_version, created, updated, agent_labels FROM nodes")
        while try s.step() {
            let labels = (try? Wire.decodeJSON([String: String].self, from: Array(s.text(4).utf8))) ?? [:]
            let agentLabels = s.optionalText(13).flatMap { try? Wire.decodeJSON([String: String].self, from: Array($0.utf8)) }
            out.nodes.append(NodeRecord(
                id: s.text(0), name: s.text(1), hostname: s.text(2),
                platform: (try? PlatformSpec(parsing: s.text(3))) ?? PlatformSpec(architecture: "unknown"),
                labels: labels, capacity: Resources(cpuMillis: s.int(5), memory: s.int(6)),
                availability: NodeAvailability(rawValue: s.text(7)) ?? .active, subnet: s.text(8), address: s.text(9),
                agentVersion: s.text(10), created: s.double(11), updated: s.double(12), agentLabels: agentLabels))
        }

        var specs: [String: ServiceSpec] = [:]
        s = try db.prepare("SELECT service_id, version, spec FROM specs")
        while try s.step() {
            let key = "\(s.text(0))@\(s.int(1))"
            do { specs[key] = try Wire.decodeJSON(ServiceSpec.self, from: Array(s.text(2).utf8)) } catch {
                throw ClusterError.store("\(db.path): the spec of service \(s.text(0)) version \(s.int(1)) is unreadable: \(error)")
            }
        }
        s = try db.prepare("SELECT id, version, created, updated, previous_spec, update_status FROM services")
        while try s.step() {
            let id = s.text(0), version = Int(s.int(1))
            guard let spec = specs["\(id)@\(version)"] else { throw ClusterError.store("\(db.path): service \(id) has no spec for version \(version)") }
            var svc = ServiceRecord(id: id, spec: spec, version: version, created: s.double(2), updated: s.double(3))
            do {
                svc.previousSpec = try s.optionalText(4).map { try Wire.decodeJSON(ServiceSpec.self, from: Array($0.utf8)) }
                svc.updateStatus = try s.optionalText(5).map { try Wire.decodeJSON(UpdateStatus.self, from: Array($0.utf8)) }
            } catch {
                throw ClusterError.store("\(db.path): the update state of service \(id) is unreadable: \(error)")
            }
            out.services.append(svc)
        }

        s = try db.prepare("SELECT id, service_id, service_name, slot, version, node_id, desired, state, message, container_id, exit_code, created, updated, not_before, address, ports, placement, serving_since, network_addresses FROM tasks")
        while try s.step() {
            let sid = s.text(1), version = Int(s.int(4))
            guard let spec = specs["\(sid)@\(version)"] else { throw ClusterError.store("\(db.path): task \(s.text(0)) has no spec") }
            var task = TaskRecord(
                id: s.text(0), serviceID: sid, serviceName: s.text(2), slot: Int(s.int(3)), version: version, spec: spec,
                nodeID: s.optionalText(5), desired: DesiredState(rawValue: s.text(6)) ?? .shutdown,
                state: TaskState(rawValue: s.text(7)) ?? .failed, message: s.text(8), containerID: s.optionalText(9),
                exitCode: s.isNull(10) ? nil : Int32(truncatingIfNeeded: s.int(10)),
                created: s.double(11), updated: s.double(12), notBefore: s.double(13),
                ports: s.optionalText(15).flatMap { try? Wire.decodeJSON([String].self, from: Array($0.utf8)) },
                address: s.optionalText(14), placement: s.optionalText(16))
            task.servingSince = s.isNull(17) ? nil : s.double(17)
            task.networkAddresses = s.optionalText(18).flatMap { try? Wire.decodeJSON([String: String].self, from: Array($0.utf8)) }
            out.tasks.append(task)
        }

        s = try db.prepare("SELECT subnet, node_id FROM leases")
        while try s.step() { out.leases[s.text(0)] = s.text(1) }

        s = try db.prepare("SELECT id, secret_hash, created, expires, used_at, used_by FROM tokens")
        while try s.step() {
            out.tokens.append(JoinTokenRecord(id: s.text(0), secretHash: s.text(1), created: s.double(2), expires: s.double(3),
                                              usedAt: s.isNull(4) ? nil : s.double(4), usedBy: s.optionalText(5)))
        }

        s = try db.prepare("SELECT serial, subject, role, not_after, revoked FROM certs")
        while try s.step() {
            out.certs.append(CertRecord(serial: s.text(0), subject: s.text(1), role: s.text(2), notAfter: s.double(3), revoked: s.int(4) != 0))
        }

        s = try db.prepare("SELECT time, kind, action, id, name, message FROM events ORDER BY seq DESC LIMIT \(Store.eventCapacity)")
        while try s.step() {
            out.events.append(ClusterEvent(time: s.double(0), kind: s.text(1), action: s.text(2), id: s.text(3), name: s.text(4), message: s.text(5)))
        }
        out.events.reverse()

        s = try db.prepare("SELECT id, kind, name, labels, created, updated, key_id, sealed, size FROM secrets")
        while try s.step() {
            guard let kind = SecretKind(rawValue: s.text(1)) else { throw ClusterError.store("\(db.path): secret \(s.text(0)) has an unknown kind \(s.text(1))") }
            let labels = (try? Wire.decodeJSON([String: String].self, from: Array(s.text(3).utf8))) ?? [:]
            out.secrets.append(SecretRecord(id: s.text(0), kind: kind, name: s.text(2), labels: labels, created: s.double(4), updated: s.double(5),
                                            keyID: s.text(6), sealed: Data(s.blob(7)), size: Int(s.int(8))))
        }

        s = try db.prepare("SELECT id, name, subnet, node_prefix, vni, attachable, labels, created, leases FROM networks")
        while try s.step() {
            let labels = (try? Wire.decodeJSON([String: String].self, from: Array(s.text(6).utf8))) ?? [:]
            let leases: [String: String]
            do { leases = try Wire.decodeJSON([String: String].self, from: Array(s.text(8).utf8)) } catch {
                throw ClusterError.store("\(db.path): the node subnets of network \(s.text(1)) are unreadable: \(error)")
            }
            out.networks.append(NetworkRecord(id: s.text(0), name: s.text(1), subnet: s.text(2), nodePrefix: Int(s.int(3)), vni: Int(s.int(4)),
                                              attachable: s.int(5) != 0, labels: labels, created: s.double(7), leases: leases))
        }
        return out
    }

    // MARK: writing

    /// Writes a batch in one transaction (nothing when it is empty).
    public func commit(_ b: StoreBatch) throws {
        guard !b.isEmpty else { return }
        try db.transaction {
            for (k, v) in b.meta {
                try db.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
                    .run([.text(k), .text(v)])
            }
            for n in b.nodes {
                let labels = String(decoding: try Wire.encodeJSON(n.labels), as: UTF8.self)
                let agentLabels = try n.agentLabels.map { String(decoding: try Wire.encodeJSON($0), as: UTF8.self) }
                try db.prepare("""
                    INSERT INTO nodes (id, name, hostname, platform, labels, cpu_millis, memory, availability, subnet, address, agent_version, created, updated, agent_labels)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                    ON CONFLICT(id) DO UPDATE SET name = excluded.name, hostname = excluded.hostname, platform = excluded.platform,
                    labels = excluded.labels, cpu_millis = excluded.cpu_millis, memory = excluded.memory, availability = excluded.availability,
                    subnet = excluded.subnet, address = excluded.address, agent_version = excluded.agent_version, updated = excluded.updated,
                    agent_labels = excluded.agent_labels
                    """).run([.text(n.id), .text(n.name), .text(n.hostname), .text(n.platform.description), .text(labels),
                              .int(n.capacity.cpuMillis), .int(n.capacity.memory), .text(n.availability.rawValue), .text(n.subnet),
                              .text(n.address), .text(n.agentVersion), .double(n.created), .double(n.updated), .opt(agentLabels)])
            }
            for id in b.removedNodes { try db.prepare("DELETE FROM nodes WHERE id = ?1").run([.text(id)]) }
            for svc in b.services {
                let spec = String(decoding: try Wire.encodeJSON(svc.spec), as: UTF8.self)
                try db.prepare("INSERT INTO specs (service_id, version, spec) VALUES (?1, ?2, ?3) ON CONFLICT(service_id, version) DO UPDATE SET spec = excluded.spec")
                    .run([.text(svc.id), .int(Int64(svc.version)), .text(spec)])
                // An upsert on the id only: a name taken by another service fails the batch instead of replacing it.
                try db.prepare("""
                    INSERT INTO services (id, name, version, created, updated, previous_spec, update_status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                    ON CONFLICT(id) DO UPDATE SET name = excluded.name, version = excluded.version, updated = excluded.updated,
                    previous_spec = excluded.previous_spec, update_status = excluded.update_status
                    """).run([.text(svc.id), .text(svc.spec.name), .int(Int64(svc.version)), .double(svc.created), .double(svc.updated),
                              .opt(try svc.previousSpec.map { String(decoding: try Wire.encodeJSON($0), as: UTF8.self) }),
                              .opt(try svc.updateStatus.map { String(decoding: try Wire.encodeJSON($0), as: UTF8.self) })])
            }
            for id in b.removedServices { try db.prepare("DELETE FROM services WHERE id = ?1").run([.text(id)]) }
            if !b.tasks.isEmpty {
                let ins = try db.prepare("""
                    INSERT OR REPLACE INTO tasks (id, service_id, service_name, slot, version, node_id, desired, state, message, container_id, exit_code, created, updated, not_before, address, ports, placement, serving_since, network_addresses)
                    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
                    """)
                for t in b.tasks {
                    ins.reset()
                    ins.bind(1, .text(t.id)); ins.bind(2, .text(t.serviceID)); ins.bind(3, .text(t.serviceName))
                    ins.bind(4, .int(Int64(t.slot))); ins.bind(5, .int(Int64(t.version))); ins.bind(6, .opt(t.nodeID))
                    ins.bind(7, .text(t.desired.rawValue)); ins.bind(8, .text(t.state.rawValue)); ins.bind(9, .text(t.message))
                    ins.bind(10, .opt(t.containerID)); ins.bind(11, .opt(t.exitCode)); ins.bind(12, .double(t.created))
                    ins.bind(13, .double(t.updated)); ins.bind(14, .double(t.notBefore)); ins.bind(15, .opt(t.address))
                    ins.bind(16, .opt(try t.ports.map { String(decoding: try Wire.encodeJSON($0), as: UTF8.self) })); ins.bind(17, .opt(t.placement))
                    ins.bind(18, t.servingSince.map { .double($0) } ?? .null)
                    ins.bind(19, .opt(try t.networkAddresses.map { String(decoding: try Wire.encodeJSON($0), as: UTF8.self) }))
                    while try ins.step() {}
                }
            }
            for id in b.removedTasks { try db.prepare("DELETE FROM tasks WHERE id = ?1").run([.text(id)]) }
            if !b.removedTasks.isEmpty || !b.removedServices.isEmpty {
                // Specs no task and no service refers to any more.
                try db.prepare("""
                    DELETE FROM specs WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.service_id = specs.service_id AND t.version = specs.version)
                    AND NOT EXISTS (SELECT 1 FROM services s WHERE s.id = specs.service_id AND s.version = specs.version)
                    """).run()
            }
            for l in b.leases {
                try db.prepare("INSERT INTO leases (subnet, node_id) VALUES (?1, ?2) ON CONFLICT(subnet) DO UPDATE SET node_id = excluded.node_id")
                    .run([.text(l.subnet), .text(l.node)])
            }
            for s in b.releasedLeases { try db.prepare("DELETE FROM leases WHERE subnet = ?1").run([.text(s)]) }
            for t in b.tokens {
                try db.prepare("INSERT OR REPLACE INTO tokens (id, secret_hash, created, expires, used_at, used_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                    .run([.text(t.id), .text(t.secretHash), .double(t.created), .double(t.expires),
                          t.usedAt.map { .double($0) } ?? .null, .opt(t.usedBy)])
            }
            for id in b.removedTokens { try db.prepare("DELETE FROM tokens WHERE id = ?1").run([.text(id)]) }
            for c in b.certs {
                try db.prepare("INSERT OR REPLACE INTO certs (serial, subject, role, not_after, revoked) VALUES (?1, ?2, ?3, ?4, ?5)")
                    .run([.text(c.serial), .text(c.subject), .text(c.role), .double(c.notAfter), .int(c.revoked ? 1 : 0)])
            }
            for r in b.secrets {
                let labels = String(decoding: try Wire.encodeJSON(r.labels), as: UTF8.self)
                // An upsert on the id only: a name taken by another secret of the kind fails the batch.
                try db.prepare("""
                    INSERT INTO secrets (id, kind, name, labels, created, updated, key_id, sealed, size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                    ON CONFLICT(id) DO UPDATE SET name = excluded.name, labels = excluded.labels, updated = excluded.updated,
                    key_id = excluded.key_id, sealed = excluded.sealed, size = excluded.size
                    """).run([.text(r.id), .text(r.kind.rawValue), .text(r.name), .text(labels), .double(r.created), .double(r.updated),
                              .text(r.keyID), .blob(Array(r.sealed)), .int(Int64(r.size))])
            }
            for id in b.removedSecrets { try db.prepare("DELETE FROM secrets WHERE id = ?1").run([.text(id)]) }
            for n in b.networks {
                let labels = String(decoding: try Wire.encodeJSON(n.labels), as: UTF8.self)
                let leases = String(decoding: try Wire.encodeJSON(n.leases), as: UTF8.self)
                // An upsert on the id only: a name, CIDR or VNI taken by another network fails the batch.
                try db.prepare("""
                    INSERT INTO networks (id, name, subnet, node_prefix, vni, attachable, labels, created, leases) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                    ON CONFLICT(id) DO UPDATE SET labels = excluded.labels, attachable = excluded.attachable, leases = excluded.leases
                    """).run([.text(n.id), .text(n.name), .text(n.subnet), .int(Int64(n.nodePrefix)), .int(Int64(n.vni)),
                              .int(n.attachable ? 1 : 0), .text(labels), .double(n.created), .text(leases)])
            }
            for id in b.removedNetworks { try db.prepare("DELETE FROM networks WHERE id = ?1").run([.text(id)]) }
            for s in b.revokedSubjects { try db.prepare("UPDATE certs SET revoked = 1 WHERE subject = ?1").run([.text(s)]) }
            if !b.events.isEmpty {
                let ins = try db.prepare("INSERT INTO events (time, kind, action, id, name, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                for e in b.events {
                    ins.reset()
                    ins.bind(1, .double(e.time)); ins.bind(2, .text(e.kind)); ins.bind(3, .text(e.action))
                    ins.bind(4, .text(e.id)); ins.bind(5, .text(e.name)); ins.bind(6, .text(e.message))
                    while try ins.step() {}
                }
                try db.prepare("DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1").run([.int(Int64(Store.eventCapacity))])
            }
        }
    }
}
