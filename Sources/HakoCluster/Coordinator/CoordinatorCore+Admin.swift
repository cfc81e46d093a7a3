import HakoSystem

/// The admin CLI's requests.
extension CoordinatorCore {
    func handleAdmin(_ env: Envelope, connection: Int) throws -> [UInt8]? {
        let wall = clock.wall()
        switch env.type {
        case MessageType.tokenCreate:
            let r = try env.body(TokenCreateRequest.self)
            return reply(env, try createToken(ttl: r.ttl, role: try PKIRole.joining(r.role)))
        case MessageType.nodeList:
            return reply(env, NodeList(nodes: state.nodes.values.sorted { ($0.name, $0.id) < ($1.name, $1.id) }.map(view)))
        case MessageType.nodeInspect:
            return reply(env, view(try state.findNode(try env.body(NodeRef.self).node)))
        case MessageType.nodeUpdate:
            return reply(env, view(try updateNode(try env.body(NodeUpdateRequest.self))))
        case MessageType.nodePs:
            let r = try env.body(NodePsRequest.self)
            let n = try state.findNode(r.node)
            let tasks = state.tasks(onNode: n.id).filter { r.all || $0.isLive || !$0.state.isTerminal }
                .sorted { ($0.serviceName, $0.slot, -$0.created) < ($1.serviceName, $1.slot, -$1.created) }
            return reply(env, TaskList(tasks: tasks.map(view)))
        case MessageType.nodeRemove:
            let r = try env.body(NodeRemoveRequest.self)
            try removeNode(try state.findNode(r.node), force: r.force)
            return reply(env, EmptyBody())
        case MessageType.serviceCreate:
            return reply(env, try createService(try env.body(ServiceCreateRequest.self).spec))
        case MessageType.serviceList:
            return reply(env, ServiceList(services: state.services.values.sorted { $0.spec.name < $1.spec.name }.map(view)))
        case MessageType.serviceInspect:
            return reply(env, view(try state.findService(try env.body(ServiceRef.self).service)))
        case MessageType.serviceScale:
            let r = try env.body(ServiceScaleRequest.self)
            var svc = try state.findService(r.service)
            guard !svc.spec.mode.isGlobal else {
                throw ClusterError.invalid("scale can only be used with replicated or replicated-job mode (\(svc.spec.name) is \(svc.spec.mode.rawValue))")
            }
            guard (0...ServiceSpec.maxReplicas).contains(r.replicas) else { throw ClusterError.invalid("replicas must be between 0 and \(ServiceSpec.maxReplicas)") }
            if svc.spec.replicas != r.replicas {
                let from = svc.spec.replicas
                svc.previousSpec = svc.spec
                svc.spec.replicas = r.replicas
                svc.updated = wall
                state.put(svc)
                dirty = true
                record(ClusterEvent(time: wall, kind: "service", action: "scaled", id: svc.id, name: svc.spec.name, message: "\(from) → \(r.replicas)"))
                log.info("service \(svc.spec.name) scaled \(from) → \(r.replicas)")
            }
            return reply(env, view(svc))
        case MessageType.serviceUpdate:
            return reply(env, try updateService(try env.body(ServiceUpdateRequest.self)))
        case MessageType.serviceRollback:
            return reply(env, try rollBackService(try env.body(ServiceRef.self)))
        case MessageType.serviceRemove:
            let svc = try state.findService(try env.body(ServiceRef.self).service)
            state.removeService(svc.id)
            dirty = true
            record(ClusterEvent(time: wall, kind: "service", action: "removed", id: svc.id, name: svc.spec.name, message: ""))
            log.info("service \(svc.spec.name) removed")
            return reply(env, EmptyBody())
        case MessageType.servicePs:
            let r = try env.body(ServicePsRequest.self)
            let svc = try state.findService(r.service)
            let tasks = state.tasks(ofService: svc.id).filter { r.all || $0.isLive || $0.state == .running || !$0.state.isTerminal }
                .sorted { ($0.slot, -$0.created) < ($1.slot, -$1.created) }
            return reply(env, TaskList(tasks: tasks.map(view)))
        case MessageType.serviceLogs:
            let r = try env.body(ServiceLogsRequest.self)
            return try startLogs(try logTasks(r.service), r, admin: connection, request: env)
        case MessageType.credentialsRenew:
            return reply(env, try renewAdmin(try env.body(RenewRequest.self)))
        case MessageType.caRotate:
            return reply(env, try rotateCA(try env.body(CARotateRequest.self)))
        case MessageType.caStatus:
            return reply(env, try caStatus())
        case MessageType.events:
            let r = try env.body(EventsRequest.self)
            if r.follow { followers.insert(connection) }
            return reply(env, EventList(events: events.filter { $0.time >= (r.since ?? 0) }))
        default:
            if let r = try handleSecretAdmin(env) { return r }
            if let r = try handleNetworkAdmin(env) { return r }
            throw WireError(.unknownType, "unknown message type \(env.type)")
        }
    }

    /// New admin credentials: a certificate for the key the request proves to
    /// hold, asked over the current admin certificate, as long-lived as the
    /// one `cluster init` wrote. The old one stays valid until it expires.
    func renewAdmin(_ r: RenewRequest) throws -> RenewReply {
        RenewReply(certificate: try issueAdmin(try CertificateRequest(pem: r.csr)).pem())
    }

    func createToken(ttl: Double?, role: PKIRole = .node) throws -> TokenReply {
        let wall = clock.wall()
        let ttl = ttl ?? config.joinTokenTTL
        guard ttl >= 1, ttl <= 30 * 86400 else { throw ClusterError.invalid("a token lives between 1 s and 30 days") }
        // A token pins the root that signs; while the CA rotates, the
        // coordinator still presents a certificate of the previous one.
        if rotation != nil { throw ClusterError.conflict("the CA is rotating (`hako cluster ca status`): make the token once it has finished") }
        // Tokens that can no longer be used are dropped while a new one is written anyway.
        for t in state.tokens.values where t.expires + 86400 < wall || (t.usedAt.map { $0 + 86400 < wall } ?? false) {
            state.removeToken(t.id)
        }
        let token = JoinToken.make(caFingerprint: ca.certificate.fingerprint)
        // A coordinator's token is kept under its own key: a node cannot join with it, nor a coordinator with a node's.
        let key = role == .coordinator ? JoinTokenRecord.coordinatorPrefix + token.id : token.id
        state.put(JoinTokenRecord(id: key, secretHash: token.secretHash, created: wall, expires: wall + ttl, usedAt: nil, usedBy: nil))
        record(ClusterEvent(time: wall, kind: "token", action: "created", id: token.id, name: role == .coordinator ? "coordinator" : "",
                            message: "expires in \(Durations.format(ttl))"))
        return TokenReply(token: token.description, expires: wall + ttl)
    }

    /// Availability and labels, as `docker node update` changes them: the
    /// orchestrator and the scheduler see the change on the next pass.
    func updateNode(_ r: NodeUpdateRequest) throws -> NodeRecord {
        var n = try state.findNode(r.node)
        let before = n
        let wall = clock.wall()
        if r.labelAdd != nil || r.labelRemove != nil {
            try n.changeLabels(add: r.labelAdd ?? [:], remove: r.labelRemove ?? [])
            try CoordinatorCore.checkNodeFields(name: n.name, hostname: n.hostname, labels: n.labels, capacity: n.capacity)
        }
        if let a = r.availability { n.availability = a }
        guard n != before else { return n }
        n.updated = wall
        state.put(n)
        dirty = true
        if n.availability != before.availability {
            record(ClusterEvent(time: wall, kind: "node", action: n.availability.rawValue, id: n.id, name: n.name, message: ""))
            log.info("node \(n.name) is now \(n.availability.rawValue)")
        }
        if n.labels != before.labels {
            let text = n.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            record(ClusterEvent(time: wall, kind: "node", action: "labels", id: n.id, name: n.name, message: text))
            log.info("node \(n.name) labels: \(text)")
        }
        return n
    }

    func removeNode(_ n: NodeRecord, force: Bool) throws {
        let st = dispatcher.status(n.id)
        if (st == .ready || st == .suspect) && !force {
            throw ClusterError.conflict("node \(n.name) is \(st.rawValue): drain it and stop its agent first, or use --force")
        }
        if let conn = dispatcher.nodes[n.id]?.connection { outgoing.append(.close(connection: conn, reason: "node removed")) }
        for t in state.tasks(onNode: n.id) { state.removeTask(t.id) }
        if let subnet = state.subnet(of: n.id) { state.release(subnet) }
        releaseNetworkSubnets(of: n.id)
        state.revokeCertificates(of: n.id)
        state.removeNode(n.id)
        state.touchedNodes.remove(n.id)
        dispatcher.forget(n.id)
        nodeCertExpiry[n.id] = nil
        settleRotation(n.id)
        dirty = true
        let wall = clock.wall()
        record(ClusterEvent(time: wall, kind: "node", action: "removed", id: n.id, name: n.name, message: "subnet \(n.subnet) released, certificates revoked"))
        log.info("node \(n.name) removed: subnet \(n.subnet) released, certificates revoked")
    }

    func createService(_ spec: ServiceSpec) throws -> ServiceView {
        try spec.validate()
        try checkDeviceCount(spec)
        let spec = try resolvingNetworks(try resolvingFiles(spec))
        if state.services.values.contains(where: { $0.spec.name == spec.name }) {
            throw ClusterError.conflict("service \(spec.name) already exists")
        }
        let wall = clock.wall()
        let svc = ServiceRecord(id: Identifiers.make(), spec: spec, version: 1, created: wall, updated: wall)
        state.put(svc)
        dirty = true
        record(ClusterEvent(time: wall, kind: "service", action: "created", id: svc.id, name: spec.name, message: "\(spec.replicas) × \(spec.image)"))
        log.info("service \(spec.name) created: \(spec.replicas) × \(spec.image)")
        return view(svc)
    }

    func updateService(_ r: ServiceUpdateRequest) throws -> ServiceView {
        var svc = try state.findService(r.service)
        if let v = r.version, v != svc.version {
            throw ClusterError.conflict("service \(svc.spec.name) changed meanwhile (version \(svc.version), not \(v)): try again")
        }
        guard r.spec.name == svc.spec.name else { throw ClusterError.invalid("a service cannot be renamed") }
        guard r.spec.mode == svc.spec.mode else { throw ClusterError.invalid("a service's mode cannot be changed (\(svc.spec.mode.rawValue))") }
        try r.spec.validate()
        try checkDeviceCount(r.spec, replacing: svc.id)
        let spec = try resolvingNetworks(try resolvingFiles(r.spec))
        // An update of a paused service is a new update (Swarm's), even with nothing changed.
        let paused = svc.updateStatus?.state.isPaused ?? false
        guard spec != svc.spec || r.force || paused else { return view(svc) }
        let wall = clock.wall()
        let rolling = r.force || spec.needsNewTasks(comparedTo: svc.spec)
        if spec != svc.spec { svc.previousSpec = svc.spec }
        svc.spec = spec
        if rolling { svc.version += 1 }
        if rolling || paused { svc.updateStatus = UpdateStatus(state: .updating, startedAt: wall, message: "update in progress") }
        svc.updated = wall
        state.put(svc)
        dirty = true
        record(ClusterEvent(time: wall, kind: "service", action: "updated", id: svc.id, name: svc.spec.name,
                            message: rolling ? "version \(svc.version): rolling update" : paused ? "update resumed" : "replicas \(svc.spec.replicas)"))
        log.info("service \(svc.spec.name) updated to version \(svc.version)")
        return view(svc)
    }

    /// `service rollback`: the previous spec back, with the rollback config.
    func rollBackService(_ r: ServiceRef) throws -> ServiceView {
        var svc = try state.findService(r.service)
        let wall = clock.wall()
        try Orchestrator.rollBack(&svc, &state, now: wall, reason: "manually requested rollback")
        dirty = true
        record(ClusterEvent(time: wall, kind: "service", action: "rollback_started", id: svc.id, name: svc.spec.name, message: "manually requested rollback"))
        log.info("service \(svc.spec.name) rolled back to its previous spec (version \(svc.version))")
        return view(svc)
    }

    // MARK: logs

    /// The tasks `service logs` reads: a service's, or one task's (Docker's
    /// `service logs` takes either; a task's name gives its slot's tasks).
    func logTasks(_ ref: String) throws -> [TaskRecord] {
        if let svc = try? state.findService(ref) { return state.tasks(ofService: svc.id) }
        if let t = state.tasks[ref] { return [t] }
        let named = state.tasks.values.filter { $0.name == ref }
        if !named.isEmpty { return named }
        // As `service logs` prints a task: NAME.ID (the id possibly cut).
        if let dot = ref.lastIndex(of: "."), case let name = String(ref[..<dot]), case let prefix = String(ref[ref.index(after: dot)...]), !prefix.isEmpty {
            let hits = state.tasks.values.filter { $0.name == name && $0.id.hasPrefix(prefix) }
            if hits.count == 1 { return hits }
        }
        let byPrefix = ref.count >= 4 ? state.tasks.values.filter { $0.id.hasPrefix(ref) } : []
        if byPrefix.count == 1 { return byPrefix }
        if byPrefix.count > 1 { throw ClusterError.conflict("task id prefix \(ref) is ambiguous: use more characters") }
        throw ClusterError.notFound("no such service or task: \(ref)")
    }

    func startLogs(_ tasks: [TaskRecord], _ r: ServiceLogsRequest, admin: Int, request env: Envelope) throws -> [UInt8]? {
        guard let id = env.id else { return nil }
        if let since = r.since, let until = r.until, until < since { throw ClusterError.invalid("--until is before --since") }
        var byNode: [String: [String]] = [:]
        var names: [String: String] = [:]
        for t in tasks where t.nodeID != nil && t.containerID != nil {
            byNode[t.nodeID ?? "", default: []].append(t.id)
            names[t.id] = "\(t.name).\(t.id.prefix(12))"
        }
        var p = PendingLogs(admin: admin, adminRequest: id, waiting: [:], deadline: clock.monotonic() + 10, names: names)
        var missing: [String] = []
        for (node, tasks) in byNode.sorted(by: { $0.key < $1.key }) {
            guard let conn = dispatcher.nodes[node]?.connection else { missing.append(state.nodes[node]?.name ?? node); continue }
            let rid = nextRequestID
            nextRequestID += 1
            p.waiting[rid] = node
            let maxBytes = max(4096, config.limits.maxLine / max(1, byNode.count) - 4096)
            send(conn, WireEncoder.request(MessageType.logs, id: rid, LogsRequest(taskIDs: tasks, tail: r.tail, maxBytes: maxBytes, since: r.since, until: r.until)))
        }
        if p.waiting.isEmpty {
            return WireEncoder.reply(to: id, ServiceLogsReply(entries: [], missing: missing, truncated: false))
        }
        let key = nextRequestID
        nextRequestID += 1
        p.missing = missing
        pendingLogs[key] = p
        return nil
    }

    func finishLogs(_ key: Int) {
        guard let p = pendingLogs.removeValue(forKey: key) else { return }
        let missing = p.missing + p.waiting.values.map { state.nodes[$0]?.name ?? $0 }
        let entries = p.entries.sorted { $0.time < $1.time }
        send(p.admin, WireEncoder.reply(to: p.adminRequest, ServiceLogsReply(entries: entries, missing: missing.sorted(), truncated: p.truncated)))
    }

    func expirePendingLogs(now: Double) {
        for (k, p) in pendingLogs where p.deadline < now { finishLogs(k) }
    }

    // MARK: views

    func view(_ n: NodeRecord) -> NodeView {
        let live = dispatcher.nodes[n.id]
        var reserved = Resources()
        var count = 0
        for t in state.tasks(onNode: n.id) where t.isLive {
            reserved.cpuMillis += t.spec.reservations.cpuMillis
            reserved.memory += t.spec.reservations.memory
            count += 1
        }
        let seen = live.map { clock.monotonic() - $0.lastSeen }
        return NodeView(id: n.id, name: n.name, hostname: n.hostname, status: live?.status ?? .unknown, availability: n.availability,
                        platform: n.platform, labels: n.labels, capacity: n.capacity, reserved: reserved, load: live?.load,
                        subnet: state.subnet(of: n.id) ?? n.subnet, address: n.address, agentVersion: n.agentVersion, tasks: count,
                        lastSeenAgo: live?.status == .unknown ? nil : seen, created: n.created, certificateExpires: nodeCertExpiry[n.id],
                        devices: n.devices)
    }

    func view(_ s: ServiceRecord) -> ServiceView {
        let tasks = state.tasks(ofService: s.id)
        let running = tasks.filter { $0.isLive && $0.state == .running }
        let current = running.filter { $0.version == s.version }
        let old = tasks.filter { $0.isLive && $0.version != s.version }
        let desired = s.spec.mode.isGlobal
            ? Orchestrator.eligibleNodes(for: s.spec, in: state, status: { dispatcher.status($0) }).count : s.spec.replicas
        var status = ""
        let done = s.spec.mode.isGlobal ? Set(current.compactMap(\.nodeID)).count : Set(current.map(\.slot)).count
        if let st = s.updateStatus {
            status = st.state.isActive ? "\(st.state.rawValue) \(done)/\(desired)" : st.state.rawValue
        } else if !old.isEmpty {
            status = "updating \(done)/\(desired)"
        } else if s.version > 1 {
            status = "completed"
        }
        return ServiceView(id: s.id, name: s.spec.name, version: s.version, spec: s.spec, running: running.count,
                           runningCurrent: current.count, created: s.created, updated: s.updated, updateStatus: status, desired: desired,
                           completed: s.spec.mode.isJob ? tasks.filter { $0.version == s.version && $0.state == .complete }.count : nil,
                           rollout: s.updateStatus.map(UpdateStatusView.init), previousSpec: s.previousSpec,
                           stopping: tasks.filter { !$0.isLive && !$0.state.isTerminal && $0.nodeID.map { dispatcher.status($0) != .down } ?? false }.count)
    }

    func view(_ t: TaskRecord) -> TaskView {
        TaskView(id: t.id, name: t.name, slot: t.slot, version: t.version, image: t.spec.image, nodeID: t.nodeID,
                 nodeName: t.nodeID.flatMap { state.nodes[$0]?.name }, desired: t.desired, state: t.state, message: t.message,
                 exitCode: t.exitCode, containerID: t.containerID, created: t.created, updated: t.updated, ports: t.ports, address: t.address,
                 networkAddresses: t.networkAddresses, placement: t.placement, health: t.health)
    }
}
