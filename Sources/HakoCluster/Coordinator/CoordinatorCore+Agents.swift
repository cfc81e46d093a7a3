import HakoNetwork
import HakoSystem

/// Agents: join, sessions, heartbeats, task reports, certificate renewal.
extension CoordinatorCore {
    func handleAgent(_ env: Envelope, node: String, connection: Int, address: String) throws -> [UInt8]? {
        switch env.type {
        case MessageType.hello:
            return reply(env, try hello(try env.body(HelloRequest.self), node: node, connection: connection, address: address))
        case MessageType.heartbeat:
            return reply(env, try heartbeat(try env.body(Heartbeat.self), node: node))
        case MessageType.taskStatus:
            let r = try env.body(TaskStatusReport.self)
            guard dispatcher.isCurrent(node, session: r.sessionID) else { throw WireError(.conflict, "not the current session") }
            for s in r.statuses { observe(s, node: node) }
            return reply(env, EmptyBody())
        case MessageType.renew:
            return reply(env, try renew(try env.body(RenewRequest.self), node: node))
        case MessageType.devicesReport:
            return reply(env, try devicesReported(try env.body(DeviceReport.self), node: node))
        case MessageType.join:
            throw WireError(.conflict, "this node has already joined")
        default:
            if MessageType.isAdmin(env.type) { throw WireError(.unauthorized, "\(env.type) needs the admin certificate") }
            throw WireError(.unknownType, "unknown message type \(env.type)")
        }
    }

    /// A node joins with a single-use token and a certificate request; it gets
    /// an id, a subnet and a certificate. Every refusal is logged. A source
    /// address refused `maxRefusedJoins` times within `refusedJoinWindow` is
    /// refused unread until the window has passed (token guessing gets five
    /// tries a minute); joins that succeed count for nothing.
    func join(_ r: JoinRequest, address: String) throws -> JoinReply {
        try limitingRefusals(address) { () throws -> JoinReply in try admit(r, address: address) }
    }

    /// The same for a coordinator (`coordinator.join`).
    func joinCoordinator(_ r: CoordinatorJoinRequest, address: String) throws -> CoordinatorJoinReply {
        try limitingRefusals(address) { () throws -> CoordinatorJoinReply in try admitCoordinator(r, address: address) }
    }

    private func limitingRefusals<R>(_ address: String, _ body: () throws -> R) throws -> R {
        let host = (try? Endpoint(parsing: address))?.host ?? address
        let now = clock.monotonic()
        let recent = (refusedJoins[host] ?? []).filter { now - $0 < CoordinatorCore.refusedJoinWindow }
        if recent.count >= CoordinatorCore.maxRefusedJoins, let first = recent.first {
            log.debug("join from \(address) not read: \(recent.count) refused within \(Int(CoordinatorCore.refusedJoinWindow)) s")
            throw ClusterError.security("too many refused joins from \(host): try again in \(Int((first + CoordinatorCore.refusedJoinWindow - now).rounded(.up))) s")
        }
        do {
            return try body()
        } catch {
            log.warning("join refused from \(address): \(error)")
            noteRefusedJoin(host, now: now, recent: recent)
            throw error
        }
    }

    static let maxRefusedJoins = 5
    static let refusedJoinWindow = 60.0
    /// Hosts remembered at most: past it, those whose refusals are older than the window go first, then the oldest.
    static let refusedJoinHosts = 1024

    private func noteRefusedJoin(_ host: String, now: Double, recent: [Double]) {
        refusedJoins[host] = recent + [now]
        guard refusedJoins.count > CoordinatorCore.refusedJoinHosts else { return }
        refusedJoins = refusedJoins.filter { now - ($0.value.last ?? 0) < CoordinatorCore.refusedJoinWindow }
        while refusedJoins.count > CoordinatorCore.refusedJoinHosts,
              let oldest = refusedJoins.min(by: { ($0.value.last ?? 0) < ($1.value.last ?? 0) })?.key {
            refusedJoins[oldest] = nil
        }
    }

    private func admit(_ r: JoinRequest, address: String) throws -> JoinReply {
        let wall = clock.wall()
        let token = try JoinToken(parsing: r.token)
        if rotation != nil { throw ClusterError.conflict("the CA is rotating: join once `hako cluster ca status` says it has finished, with a token made then") }
        guard token.caFingerprint == ca.certificate.fingerprint else {
            throw ClusterError.security("the token belongs to another cluster (CA fingerprint mismatch)")
        }
        guard var tokenRecord = state.tokens[token.id], PKI.constantTimeEqual(tokenRecord.secretHash, token.secretHash) else {
            if state.tokens[JoinTokenRecord.coordinatorPrefix + token.id] != nil {
                throw ClusterError.security("a coordinator's join token cannot join a node: make one with `hako cluster token`")
            }
            throw ClusterError.security("unknown join token")
        }
        if let used = tokenRecord.usedAt {
            throw ClusterError.security("the join token was already used (\(Timestamp(seconds: Int64(used)).rfc3339) by node \(tokenRecord.usedBy ?? "?"))")
        }
        guard wall < tokenRecord.expires else { throw ClusterError.security("the join token expired at \(Timestamp(seconds: Int64(tokenRecord.expires)).rfc3339)") }
        try CoordinatorCore.checkNodeFields(name: r.name, hostname: r.hostname, labels: r.labels, capacity: r.capacity)
        let csr = try CertificateRequest(pem: r.csr)
        guard let subnet = subnets.allocate(leased: Set(state.leases.keys)) else {
            throw ClusterError.conflict("no free subnet: \(config.clusterCIDR) holds \(subnets.capacity) nodes of /\(config.nodeSubnetPrefix)")
        }
        let id = Identifiers.make()
        let cert = try issueNodeCertificate(csr, node: id)
        tokenRecord.usedAt = wall
        tokenRecord.usedBy = id
        state.put(tokenRecord)
        let node = NodeRecord(id: id, name: r.name, hostname: r.hostname, platform: r.platform, labels: r.labels, capacity: r.capacity,
                              availability: .active, subnet: subnet, address: address, agentVersion: r.agentVersion, created: wall, updated: wall,
                              agentLabels: r.labels)
        state.put(node)
        state.lease(subnet, to: id)
        dispatcher.track(id, now: clock.monotonic())
        record(ClusterEvent(time: wall, kind: "node", action: "joined", id: id, name: r.name, message: "\(address), subnet \(subnet)"))
        log.info("node \(r.name) (\(id.prefix(12))) joined from \(address): subnet \(subnet), \(r.platform)")
        return JoinReply(nodeID: id, certificate: try cert.pem(), ca: try ca.certificate.pem(), clusterID: clusterID, subnet: subnet)
    }

    /// A coordinator joins with a coordinator token and a certificate request
    /// for its own key; it gets a coordinator certificate (what it asks for
    /// next, the CA and the voters, comes over mutual TLS with it).
    private func admitCoordinator(_ r: CoordinatorJoinRequest, address: String) throws -> CoordinatorJoinReply {
        let wall = clock.wall()
        let token = try JoinToken(parsing: r.token)
        if rotation != nil { throw ClusterError.conflict("the CA is rotating: join once `hako cluster ca status` says it has finished, with a token made then") }
        guard token.caFingerprint == ca.certificate.fingerprint else {
            throw ClusterError.security("the token belongs to another cluster (CA fingerprint mismatch)")
        }
        let key = JoinTokenRecord.coordinatorPrefix + token.id
        guard var tokenRecord = state.tokens[key], PKI.constantTimeEqual(tokenRecord.secretHash, token.secretHash) else {
            if state.tokens[token.id] != nil {
                throw ClusterError.security("a node's join token cannot join a coordinator: make one with `hako cluster token --role coordinator`")
            }
            throw ClusterError.security("unknown join token")
        }
        if let used = tokenRecord.usedAt {
            throw ClusterError.security("the join token was already used (\(Timestamp(seconds: Int64(used)).rfc3339) by \(tokenRecord.usedBy ?? "?"))")
        }
        guard wall < tokenRecord.expires else { throw ClusterError.security("the join token expired at \(Timestamp(seconds: Int64(tokenRecord.expires)).rfc3339)") }
        guard r.sans.count <= 32, r.sans.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 253 && !$0.contains(where: { $0.isWhitespace }) }) else {
            throw ClusterError.invalid("invalid certificate names (at most 32, no spaces)")
        }
        let csr = try CertificateRequest(pem: r.csr)
        let cert = try ca.issue(request: csr, commonName: "coordinator", role: .coordinator, notBefore: wall - 300, notAfter: wall + 365 * 86400, sans: r.sans)
        tokenRecord.usedAt = wall
        tokenRecord.usedBy = "coordinator \(address)"
        state.put(tokenRecord)
        state.put(CertRecord(serial: cert.serial, subject: "coordinator", role: PKIRole.coordinator.rawValue, notAfter: cert.notAfter, revoked: false))
        record(ClusterEvent(time: wall, kind: "coordinator", action: "joined", id: cert.serial, name: address, message: r.sans.joined(separator: ",")))
        log.info("coordinator at \(address) joined: certificate \(cert.serial) for \(r.sans.joined(separator: ", "))")
        return CoordinatorJoinReply(certificate: try cert.pem(), trust: try trust.pem(), clusterID: clusterID,
                                    clusterCIDR: config.clusterCIDR, nodeSubnetPrefix: config.nodeSubnetPrefix)
    }

    static func checkNodeFields(name: String, hostname: String, labels: [String: String], capacity: Resources) throws(ClusterError) {
        guard !name.isEmpty, name.utf8.count <= 128, !name.contains(where: { $0.isWhitespace }) else { throw .invalid("invalid node name \"\(name)\"") }
        guard hostname.utf8.count <= 255 else { throw .invalid("hostname too long") }
        guard labels.count <= 64, labels.allSatisfy({ !$0.key.isEmpty && $0.key.utf8.count <= 128 && $0.value.utf8.count <= 256 }) else {
            throw .invalid("invalid node labels (at most 64, keys up to 128 bytes, values up to 256)")
        }
        guard capacity.cpuMillis >= 0, capacity.memory >= 0 else { throw .invalid("negative capacity") }
    }

    func hello(_ r: HelloRequest, node: String, connection: Int, address: String) throws -> HelloReply {
        guard var n = state.nodes[node] else { throw ClusterError.notFound("node \(node) was removed") }
        try CoordinatorCore.checkNodeFields(name: r.name, hostname: r.hostname, labels: r.labels, capacity: r.capacity)
        if let old = dispatcher.nodes[node]?.connection, old != connection {
            outgoing.append(.close(connection: old, reason: "replaced by a new session of the same node"))
            dispatcher.close(node, connection: old, now: clock.monotonic())
        }
        let before = n
        n.name = r.name
        n.hostname = r.hostname
        n.platform = r.platform
        n.capacity = r.capacity
        n.takeAgentLabels(r.labels)
        n.agentVersion = r.agentVersion
        let devices = try CoordinatorCore.checkDevices(r.devices)
        if let a = r.advertiseAddress {
            guard IPv4Address(a) != nil, a != "0.0.0.0" else { throw ClusterError.invalid("advertise address \"\(a)\" is not an IPv4 address") }
            n.address = a
        } else {
            n.address = address
        }
        if n != before {
            n.updated = clock.wall()
            state.put(n)
            dirty = true
        }
        // In memory only: a change of devices or of the overlay opt-out alone writes nothing.
        state.setDevices(devices, of: node)
        state.setOverlayOptOut(r.overlay == false, of: node)
        let session = Identifiers.make()
        let interval = dispatcher.nextInterval(using: &rng)
        let was = dispatcher.open(node, session: session, connection: connection, load: r.load, now: clock.monotonic(), interval: interval)
        if was != .ready {
            record(ClusterEvent(time: clock.wall(), kind: "node", action: "ready", id: node, name: n.name,
                                message: "session from \(address), \(r.tasks.count) tasks adopted"))
            log.info("node \(n.name) ready (was \(was.rawValue)), \(r.tasks.count) tasks reported")
        }
        for s in r.tasks { observe(s, node: node) }
        dirty = true
        state.touchedNodes.insert(node)
        let subnet = state.subnet(of: node) ?? n.subnet
        // The roots to trust, in case they changed while the node was away.
        sendTrust(node)
        return HelloReply(sessionID: session, clusterID: clusterID, clusterCIDR: config.clusterCIDR, subnet: subnet,
                          heartbeatMs: Int(interval * 1000))
    }

    func heartbeat(_ hb: Heartbeat, node: String) throws -> HeartbeatReply {
        let interval = dispatcher.nextInterval(using: &rng)
        guard let was = dispatcher.beat(node, session: hb.sessionID, load: hb.load, tasks: hb.tasks, now: clock.monotonic(), interval: interval) else {
            throw WireError(.conflict, "not the current session: say hello again")
        }
        metrics.heartbeats += 1
        if was != .ready {
            let name = state.nodes[node]?.name ?? node
            log.info("node \(name) \(was.rawValue) → ready")
            record(ClusterEvent(time: clock.wall(), kind: "node", action: "ready", id: node, name: name, message: ""))
            dirty = true
        }
        for (id, st) in hb.tasks {
            if let t = state.tasks[id], t.nodeID == node, t.state != st {
                observe(TaskStatus(taskID: id, state: st, containerID: t.containerID, exitCode: t.exitCode, message: t.message), node: node)
            }
        }
        return HeartbeatReply(nextMs: Int(interval * 1000))
    }

    /// An agent's view of one of its tasks (observed state is the agent's to write).
    func observe(_ s: TaskStatus, node: String) {
        guard var t = state.tasks[s.taskID], t.nodeID == node else { return }
        // The first ending recorded stands (an orphaned task's real ending replaces the guess).
        if t.state.isTerminal && t.state != .orphaned && s.state.isTerminal && s.state != t.state { return }
        // An orphaned task still running on a node that came back stays
        // orphaned (replaced: its node kills it at once) until it ends.
        if t.state == .orphaned && !s.state.isTerminal { return }
        let changed = t.state != s.state || (s.containerID != nil && t.containerID != s.containerID) || t.exitCode != s.exitCode
            || (!s.message.isEmpty && t.message != s.message) || (s.ports != nil && s.ports != t.ports)
            || (s.address != nil && s.address != t.address) || (s.health != nil && s.health != t.health)
            || (s.networkAddresses != nil && s.networkAddresses != t.networkAddresses)
        guard changed else { return }
        let stateChanged = t.state != s.state
        t.state = s.state
        if let c = s.containerID { t.containerID = c }
        t.exitCode = s.exitCode
        if let p = s.ports { t.ports = p }
        if let a = s.address { t.address = a }
        if let a = s.networkAddresses { t.networkAddresses = a }
        if let h = s.health, h != t.health {
            t.health = h
            record(ClusterEvent(time: clock.wall(), kind: "task", action: "health_status", id: t.id, name: t.name, message: h))
        }
        if !s.message.isEmpty || stateChanged { t.message = s.message }
        if stateChanged { t.updated = clock.wall() }
        state.put(t)
        dirty = true
        if stateChanged {
            record(ClusterEvent(time: clock.wall(), kind: "task", action: s.state.rawValue, id: t.id, name: t.name,
                                message: [state.nodes[node]?.name ?? node, s.message].filter { !$0.isEmpty }.joined(separator: ": ")))
        }
    }

    func renew(_ r: RenewRequest, node: String) throws -> RenewReply {
        let cert = try issueNodeCertificate(try CertificateRequest(pem: r.csr), node: node)
        log.info("renewed the certificate of node \(state.nodes[node]?.name ?? node) until \(Timestamp(seconds: Int64(cert.notAfter)).rfc3339)")
        return RenewReply(certificate: try cert.pem())
    }

    /// A node's certificate from the current root, recorded, and counted
    /// toward a CA rotation in progress.
    func issueNodeCertificate(_ csr: CertificateRequest, node: String) throws -> Certificate {
        let v = CertificateAuthority.validity(now: clock.wall(), lifetime: config.nodeCertTTL)
        let cert = try ca.issue(request: csr, commonName: node, role: .node, notBefore: v.notBefore, notAfter: v.notAfter)
        state.put(CertRecord(serial: cert.serial, subject: node, role: PKIRole.node.rawValue, notAfter: cert.notAfter, revoked: false))
        nodeCertExpiry[node] = cert.notAfter
        settleRotation(node)
        return cert
    }

    /// How long after its certificate expired a node may still renew it with
    /// its old key alone (a Pi that was off, or whose clock was wrong); later,
    /// it joins again with a new token.
    public static let expiredRenewalWindow: Double = 30 * 86400

    /// A node back after its certificate expired: the certificate must be this
    /// CA's, issued by this coordinator, not revoked, of a node still in the
    /// cluster, expired (a valid one renews over its session) for no longer
    /// than the window, and the request signed with its key. Every refusal is
    /// logged.
    func renewExpired(_ r: RenewExpiredRequest, address: String) throws -> RenewReply {
        do {
            let wall = clock.wall()
            let old = try Certificate(pem: r.certificate)
            try trust.verify(old, at: old.notAfter - 1)
            guard let record = state.certs[old.serial], !record.revoked, old.role == PKIRole.node.rawValue,
                  old.organization == "hako-cluster-\(clusterID)" else {
                throw ClusterError.security("certificate \(old.serial) is not a current node certificate of this cluster (revoked, or never issued here)")
            }
            let node = old.commonName
            guard let n = state.nodes[node] else { throw ClusterError.security("node \(node) was removed: join again with a new token") }
            guard wall > old.notAfter else { throw ClusterError.invalid("the certificate has not expired: it renews over the node's session") }
            guard wall - old.notAfter <= CoordinatorCore.expiredRenewalWindow else {
                throw ClusterError.security("the certificate expired more than \(Int(CoordinatorCore.expiredRenewalWindow / 86400)) days ago: join again with a new token")
            }
            let csr = try CertificateRequest(pem: r.csr)
            guard csr.provesKey(of: old) else { throw ClusterError.security("the request is not signed with the certificate's key") }
            let cert = try issueNodeCertificate(csr, node: node)
            log.info("renewed the expired certificate of node \(n.name) (expired \(Timestamp(seconds: Int64(old.notAfter)).rfc3339)) until \(Timestamp(seconds: Int64(cert.notAfter)).rfc3339)")
            return RenewReply(certificate: try cert.pem())
        } catch {
            log.warning("renewal of an expired certificate refused from \(address): \(error)")
            throw error
        }
    }

    /// Replies of agents to the coordinator's own requests (logs).
    func agentReplied(_ env: Envelope, node: String) {
        guard let re = env.re, let key = pendingLogs.first(where: { $0.value.waiting[re] == node })?.key else { return }
        if env.type == MessageType.reply, let r = try? env.body(LogsReply.self), var p = pendingLogs[key] {
            let nodeName = state.nodes[node]?.name ?? node
            for e in r.entries {
                p.entries.append(ServiceLogEntry(task: p.names[e.taskID] ?? e.taskID, node: nodeName, time: e.time, stream: e.stream, text: e.text))
            }
            p.truncated = p.truncated || r.truncated
            pendingLogs[key] = p
        }
        pendingLogs[key]?.waiting[re] = nil
        if pendingLogs[key]?.waiting.isEmpty == true { finishLogs(key) }
    }
}

extension MessageType {
    /// The admin's requests, which a node's certificate is told it cannot make.
    static func isAdmin(_ t: String) -> Bool {
        t.hasPrefix("node.") || t.hasPrefix("service.") || t.hasPrefix("network.") || (t.hasPrefix("secret.") && t != secretData)
            || t == tokenCreate || t == events || t == credentialsRenew || t == caRotate || t == caStatus
    }
}
