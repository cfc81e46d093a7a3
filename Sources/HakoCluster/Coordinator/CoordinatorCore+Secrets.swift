import HakoSystem

/// Secrets and configs: created sealed (`SecretBox`), resolved by name when a
/// service refers to them, refused removal while a service uses them, and
/// sent in plaintext only to a node assigned a live task that uses them, on
/// its mutual-TLS session, just before the assignment (`secret.data`).
extension CoordinatorCore {
    /// The admin's secret and config requests; nil: not one of them.
    func handleSecretAdmin(_ env: Envelope) throws -> [UInt8]? {
        switch env.type {
        case MessageType.secretCreate:
            let r = try env.body(SecretCreateRequest.self)
            return reply(env, view(try createSecret(kind: r.kind, name: r.name, labels: r.labels, data: Array(r.data))))
        case MessageType.secretList:
            let kind = try env.body(SecretListRequest.self).kind
            let items = state.secrets.values.filter { $0.kind == kind }.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
            return reply(env, SecretList(items: items.map(view)))
        case MessageType.secretInspect:
            let r = try env.body(SecretRef.self)
            return reply(env, view(try state.findSecret(r.ref, kind: r.kind)))
        case MessageType.secretRemove:
            let r = try env.body(SecretRef.self)
            try removeSecret(try state.findSecret(r.ref, kind: r.kind))
            return reply(env, EmptyBody())
        case MessageType.secretCompare:
            let r = try env.body(SecretCompareRequest.self)
            return reply(env, SecretCompareReply(same: try hasData(try state.findSecret(r.ref, kind: r.kind), Array(r.data))))
        default:
            return nil
        }
    }

    /// Seals and stores a new secret or config: the simple creation API
    /// (`hako cluster secret create`, and a stack's top-level `secrets:`).
    @discardableResult
    public func createSecret(kind: SecretKind, name: String, labels: [String: String] = [:], data: [UInt8]) throws -> SecretRecord {
        try SecretRecord.validate(kind: kind, name: name, labels: labels, size: data.count)
        guard let box = secretBox else { throw ClusterError.store("this coordinator has no secrets key (pki/secrets.key)") }
        if state.secrets.values.contains(where: { $0.kind == kind && $0.name == name }) {
            throw ClusterError.conflict("\(kind.rawValue) \(name) already exists")
        }
        let wall = clock.wall()
        let sealed = try SecretRecord.make(kind: kind, name: name, labels: labels, data: data, box: box, now: wall)
        state.put(sealed)
        // The event and the log name it; its data is never in either.
        record(ClusterEvent(time: wall, kind: kind.rawValue, action: "created", id: sealed.id, name: name, message: "\(data.count) bytes"))
        log.info("\(kind.rawValue) \(name) created (\(data.count) bytes)")
        return sealed
    }

    /// Whether `candidate` is the secret's data (`secret.compare`): the
    /// sealed data is opened here and compared in constant time; the answer
    /// is all that leaves, and neither is logged. Another size is another
    /// data without opening it (the size is no secret: `inspect` shows it).
    public func hasData(_ r: SecretRecord, _ candidate: [UInt8]) throws -> Bool {
        guard candidate.count == r.size else { return false }
        guard let box = secretBox else { throw ClusterError.store("this coordinator has no secrets key (pki/secrets.key)") }
        return PKI.constantTimeEqual(try r.open(with: box), candidate)
    }

    /// Refused while a service uses it (the services named).
    public func removeSecret(_ r: SecretRecord) throws {
        let users = services(using: r.id)
        guard users.isEmpty else {
            throw ClusterError.conflict("\(r.kind.rawValue) \(r.name) is in use by service\(users.count == 1 ? "" : "s") \(users.joined(separator: ", ")): remove it from \(users.count == 1 ? "that service" : "them") first (service update --\(r.kind.rawValue)-rm \(r.name))")
        }
        state.removeSecret(r.id)
        let wall = clock.wall()
        record(ClusterEvent(time: wall, kind: r.kind.rawValue, action: "removed", id: r.id, name: r.name, message: ""))
        log.info("\(r.kind.rawValue) \(r.name) removed")
    }

    /// The names of the services whose current spec refers to the secret (or config).
    func services(using id: String) -> [String] {
        state.services.values.filter { s in s.spec.fileReferences.contains { $0.ref.id == id } }.map(\.spec.name).sorted()
    }

    /// The spec with each secret and config reference bound to the id of the
    /// one of that name (a reference to none is refused).
    func resolvingFiles(_ spec: ServiceSpec) throws(ClusterError) -> ServiceSpec {
        var out = spec
        func resolve(_ refs: [SecretReference], _ kind: SecretKind) throws(ClusterError) -> [SecretReference] {
            var resolved: [SecretReference] = []
            for var r in refs {
                guard let found = state.secrets.values.first(where: { $0.kind == kind && $0.name == r.source }) else {
                    throw .notFound("\(kind.rawValue) not found: \(r.source) (hako cluster \(kind.rawValue) create \(r.source) FILE)")
                }
                r.id = found.id
                resolved.append(r)
            }
            return resolved
        }
        out.secrets = try resolve(spec.secrets, .secret)
        out.configs = try resolve(spec.configs, .config)
        return out
    }

    /// Before a node's assignment: the data of every secret and config its
    /// live tasks use that its present session has not received yet (or
    /// received, then forgot when no assigned task used it any more).
    func sendSecretData(_ node: String, connection conn: Int, tasks: [Assignment]) {
        var sent: Set<String> = []
        if let s = secretsSent[node], s.connection == conn { sent = s.ids }
        for a in tasks where a.desired == .running {
            for (kind, ref) in a.spec.fileReferences where !sent.contains(ref.id) {
                guard let box = secretBox, let r = state.secrets[ref.id] else { continue }
                do {
                    let data = try r.open(with: box)
                    send(conn, WireEncoder.request(MessageType.secretData, id: nil, SecretData(id: r.id, kind: kind, data: data)))
                    sent.insert(r.id)
                } catch {
                    // The task's node reports it cannot start it (its data never came).
                    log.error("\(kind.rawValue) \(r.name): \(error)")
                }
            }
        }
        // The agent forgets what no task of the assignment refers to; so does this record, so that it is sent again when needed.
        let referred = Set(tasks.flatMap { $0.spec.fileReferences.map(\.ref.id) })
        secretsSent[node] = (conn, sent.intersection(referred))
    }

    func view(_ r: SecretRecord) -> SecretView {
        SecretView(id: r.id, kind: r.kind, name: r.name, labels: r.labels, created: r.created, updated: r.updated, size: r.size,
                   services: services(using: r.id))
    }
}
