/// The coordinator's state in memory, indexed; every change is also queued in
/// `batch` for the store and marks the nodes whose assignment it touches.
public struct ClusterState: Sendable {
    public var meta: [String: String] = [:]
    public private(set) var nodes: [String: NodeRecord] = [:]
    public private(set) var services: [String: ServiceRecord] = [:]
    public private(set) var tasks: [String: TaskRecord] = [:]
    /// subnet → node id
    public private(set) var leases: [String: String] = [:]
    public var tokens: [String: JoinTokenRecord] = [:]
    public var certs: [String: CertRecord] = [:]
    /// Secrets and configs by id (sealed).
    public private(set) var secrets: [String: SecretRecord] = [:]
    /// Cluster networks by id (the built-in cluster network is not one).
    public private(set) var networks: [String: NetworkRecord] = [:]
    public private(set) var tasksByService: [String: Set<String>] = [:]
    public private(set) var tasksByNode: [String: Set<String>] = [:]

    /// Changes not yet written.
    public var batch = StoreBatch()
    /// Nodes whose set of tasks changed since they were last told.
    public var touchedNodes: Set<String> = []

    public init() {}

    public init(stored: StoredState) {
        meta = stored.meta
        for n in stored.nodes { nodes[n.id] = n }
        for s in stored.services { services[s.id] = s }
        for t in stored.tasks { index(t) }
        leases = stored.leases
        for t in stored.tokens { tokens[t.id] = t }
        for c in stored.certs { certs[c.serial] = c }
        for r in stored.secrets { secrets[r.id] = r }
        for n in stored.networks { networks[n.id] = n }
        batch = StoreBatch()
    }

    private mutating func index(_ t: TaskRecord) {
        tasks[t.id] = t
        tasksByService[t.serviceID, default: []].insert(t.id)
        if let n = t.nodeID { tasksByNode[n, default: []].insert(t.id) }
    }

    // MARK: tasks

    /// Stores a task. Its node is told again only when what the node must do
    /// changes (the task is new there, or its wanted state or version changed);
    /// a change of observed state came from the node itself.
    public mutating func put(_ t: TaskRecord) {
        let old = tasks[t.id]
        if let old, old.nodeID != t.nodeID, let n = old.nodeID {
            tasksByNode[n]?.remove(t.id)
            touchedNodes.insert(n)
        }
        index(t)
        if let n = t.nodeID, old == nil || old?.nodeID != t.nodeID || old?.isLive != t.isLive || old?.version != t.version {
            touchedNodes.insert(n)
        }
        batch.tasks.append(t)
    }

    public mutating func removeTask(_ id: String) {
        guard let t = tasks.removeValue(forKey: id) else { return }
        tasksByService[t.serviceID]?.remove(id)
        if tasksByService[t.serviceID]?.isEmpty == true { tasksByService[t.serviceID] = nil }
        if let n = t.nodeID {
            tasksByNode[n]?.remove(id)
            touchedNodes.insert(n)
        }
        batch.removedTasks.append(id)
    }

    public func tasks(ofService id: String) -> [TaskRecord] {
        (tasksByService[id] ?? []).compactMap { tasks[$0] }
    }

    public func tasks(onNode id: String) -> [TaskRecord] {
        (tasksByNode[id] ?? []).compactMap { tasks[$0] }
    }

    // MARK: services and nodes

    public mutating func put(_ s: ServiceRecord) {
        services[s.id] = s
        batch.services.append(s)
    }

    public mutating func removeService(_ id: String) {
        guard services.removeValue(forKey: id) != nil else { return }
        batch.removedServices.append(id)
    }

    public mutating func put(_ n: NodeRecord) {
        nodes[n.id] = n
        batch.nodes.append(n)
    }

    /// The devices a node reported: memory only (not a store column, never
    /// in the batch), since every node reports again to a new leader.
    /// Whether they changed.
    @discardableResult
    public mutating func setDevices(_ devices: [String]?, of node: String) -> Bool {
        guard nodes[node] != nil, nodes[node]?.devices != devices else { return false }
        nodes[node]?.devices = devices
        return true
    }

    /// Whether a node opted out of the overlay: memory only, as `setDevices`.
    /// Whether it changed.
    @discardableResult
    public mutating func setOverlayOptOut(_ optOut: Bool, of node: String) -> Bool {
        let value: Bool? = optOut ? true : nil
        guard nodes[node] != nil, nodes[node]?.overlayOptOut != value else { return false }
        nodes[node]?.overlayOptOut = value
        return true
    }

    public mutating func removeNode(_ id: String) {
        guard nodes.removeValue(forKey: id) != nil else { return }
        batch.removedNodes.append(id)
        tasksByNode[id] = nil
    }

    public mutating func lease(_ subnet: String, to node: String) {
        leases[subnet] = node
        batch.leases.append(LeaseRecord(subnet: subnet, node: node))
    }

    public mutating func release(_ subnet: String) {
        guard leases.removeValue(forKey: subnet) != nil else { return }
        batch.releasedLeases.append(subnet)
    }

    public func subnet(of node: String) -> String? {
        leases.first { $0.value == node }?.key
    }

    public mutating func put(_ t: JoinTokenRecord) {
        tokens[t.id] = t
        batch.tokens.append(t)
    }

    public mutating func removeToken(_ id: String) {
        guard tokens.removeValue(forKey: id) != nil else { return }
        batch.removedTokens.append(id)
    }

    public mutating func put(_ c: CertRecord) {
        certs[c.serial] = c
        batch.certs.append(c)
    }

    public mutating func revokeCertificates(of subject: String) {
        for (k, c) in certs where c.subject == subject { certs[k]?.revoked = true }
        batch.revokedSubjects.append(subject)
    }

    public mutating func put(_ r: SecretRecord) {
        secrets[r.id] = r
        batch.secrets.append(r)
    }

    public mutating func removeSecret(_ id: String) {
        guard secrets.removeValue(forKey: id) != nil else { return }
        batch.removedSecrets.append(id)
    }

    /// A secret or config by id, name or unique id prefix.
    public func findSecret(_ ref: String, kind: SecretKind) throws(ClusterError) -> SecretRecord {
        if let r = secrets[ref], r.kind == kind { return r }
        let ofKind = secrets.values.filter { $0.kind == kind }
        if let r = ofKind.first(where: { $0.name == ref }) { return r }
        let byPrefix = ofKind.filter { $0.id.hasPrefix(ref) }
        if byPrefix.count == 1, let r = byPrefix.first, !ref.isEmpty { return r }
        if byPrefix.count > 1 { throw .conflict("\(kind.rawValue) id prefix \(ref) is ambiguous: use more characters") }
        throw .notFound("no such \(kind.rawValue): \(ref)")
    }

    public mutating func put(_ n: NetworkRecord) {
        networks[n.id] = n
        batch.networks.append(n)
    }

    public mutating func removeNetwork(_ id: String) {
        guard networks.removeValue(forKey: id) != nil else { return }
        batch.removedNetworks.append(id)
    }

    /// A network by id, name or unique id prefix.
    public func findNetwork(_ ref: String) throws(ClusterError) -> NetworkRecord {
        if let n = networks[ref] { return n }
        if let n = networks.values.first(where: { $0.name == ref }) { return n }
        let byPrefix = networks.values.filter { $0.id.hasPrefix(ref) }
        if byPrefix.count == 1, let n = byPrefix.first, !ref.isEmpty { return n }
        if byPrefix.count > 1 { throw .conflict("network id prefix \(ref) is ambiguous: use more characters") }
        throw .notFound("no such network: \(ref)")
    }

    public mutating func setMeta(_ key: String, _ value: String) {
        meta[key] = value
        batch.meta[key] = value
    }

    /// Hands the queued changes over (to be committed) and starts a new batch.
    public mutating func takeBatch() -> StoreBatch {
        let b = batch
        batch = StoreBatch()
        return b
    }

    // MARK: lookups by name or id prefix

    public func findNode(_ ref: String) throws(ClusterError) -> NodeRecord {
        if let n = nodes[ref] { return n }
        let byName = nodes.values.filter { $0.name == ref }
        if byName.count == 1, let n = byName.first { return n }
        if byName.count > 1 { throw .conflict("node name \(ref) is ambiguous (\(byName.count) nodes): use the id") }
        let byPrefix = nodes.values.filter { $0.id.hasPrefix(ref) }
        if byPrefix.count == 1, let n = byPrefix.first, !ref.isEmpty { return n }
        if byPrefix.count > 1 { throw .conflict("node id prefix \(ref) is ambiguous: use more characters") }
        throw .notFound("no such node: \(ref)")
    }

    public func findService(_ ref: String) throws(ClusterError) -> ServiceRecord {
        if let s = services[ref] { return s }
        if let s = services.values.first(where: { $0.spec.name == ref }) { return s }
        let byPrefix = services.values.filter { $0.id.hasPrefix(ref) }
        if byPrefix.count == 1, let s = byPrefix.first, !ref.isEmpty { return s }
        if byPrefix.count > 1 { throw .conflict("service id prefix \(ref) is ambiguous: use more characters") }
        throw .notFound("no such service: \(ref)")
    }
}
