#if canImport(Glibc)
import Glibc
#endif
import HakoNetwork
import HakoSystem
import HakoTransport

/// The agent's session with the coordinators: asking every known one at
/// once, keeping the leader's, the hello and its answer, and the messages
/// the session carries (Agent.swift: the loop, heartbeats, tasks, renewal).
extension Agent {
    /// One coordinator being asked for a session.
    struct SessionAttempt {
        let id: Int
        /// The socket while TCP connects; then the connection's.
        let fd: FileDescriptor
        var conn: LineConnection?
        var hello: HelloRequest?
        var helloID: Int?
        /// Ends the attempt if the coordinator does not answer in time.
        var timer: Int?
    }

    /// The longest a healthy agent takes to open a session with a new
    /// leader once it leads: the backoff's longest step with jitter (1.2 s)
    /// and the connect, TLS handshake and hello (well under a second on a
    /// Pi). `Coordinator.leadershipAllowance` counts on it.
    public static let leaderReachBound = 2.0

    /// How long a coordinator may take to accept the TCP connection; the
    /// TLS handshake and the hello's answer then have `limits.handshakeTimeout`.
    static let connectTimeout = 3.0

    /// Opens a session: every known coordinator is asked at once (those not
    /// being asked already nor waiting for their backoff), over non-blocking
    /// connects. The first to accept the hello — the leader — holds the
    /// session and the other attempts are closed; a follower's answer names
    /// the leader, which is asked at once if it is not already. A coordinator
    /// that does not answer at all (a dead Pi: its address a black hole until
    /// the connect times out) delays no other: after a leader change a
    /// healthy node reaches the new leader within one backoff step (≤ 1.2 s)
    /// of its election, well inside the grace period the new leader starts
    /// for every node (`Coordinator.leadershipAllowance`).
    func connect() {
        guard lookingForLeader else { return }
        for a in coordinators.isEmpty ? [identity.coordinator] : coordinators where attempts[a] == nil && retries[a] == nil {
            attempt(a)
        }
    }

    /// No session, or one whose coordinator went silent.
    var lookingForLeader: Bool { !loop.isStopping && (conn == nil || probing) }

    /// Starts asking one coordinator (unless it is being asked already, or holds the session).
    func attempt(_ address: String) {
        guard lookingForLeader, attempts[address] == nil, conn == nil || address != sessionAddress else { return }
        if let t = retries.removeValue(forKey: address) { loop.cancel(t) }
        let id = nextAttemptID
        nextAttemptID += 1
        let started: (fd: FileDescriptor, connected: Bool)
        do {
            started = try Sockets.startConnect(try Endpoint(parsing: address, defaultPort: CoordinatorConfig.defaultPort))
        } catch {
            attemptFailed(address, "cannot reach the coordinator: \(error)")
            return
        }
        let timer = loop.after(Agent.connectTimeout) { [weak self] in
            self?.endAttempt(address, id: id, "cannot reach the coordinator \(address): no connection after \(Durations.format(Agent.connectTimeout))")
        }
        attempts[address] = SessionAttempt(id: id, fd: started.fd, timer: timer)
        if started.connected {
            tcpConnected(address, id: id)
        } else {
            loop.watch(started.fd.rawValue, events: Int16(POLLOUT)) { [weak self] _ in self?.tcpConnected(address, id: id) }
        }
    }

    /// The TCP connect ended: on success the TLS handshake starts.
    func tcpConnected(_ address: String, id: Int) {
        guard let a = attempts[address], a.id == id, a.conn == nil else { return }
        loop.unwatch(a.fd.rawValue)
        if let why = Sockets.finishConnect(a.fd) {
            endAttempt(address, id: id, "cannot reach the coordinator \(address): \(why)")
            return
        }
        do {
            let c = try LineConnection(id: id, fd: a.fd, peer: address, context: tls, server: false, loop: loop, limits: config.limits)
            c.onOpen = { [unowned self] c in self.attemptOpened(address, id: id, c) }
            c.onMessage = { [unowned self] c, env in
                if self.conn === c { self.received(env) } else { self.attemptAnswered(address, id: id, env) }
            }
            c.onClose = { [unowned self] c, reason in
                if self.conn === c { self.closed(reason) } else { self.endAttempt(address, id: id, reason) }
            }
            if let t = a.timer { loop.cancel(t) }
            attempts[address]?.conn = c
            attempts[address]?.timer = loop.after(config.limits.handshakeTimeout) { [weak self] in
                self?.endAttempt(address, id: id, "\(address) did not answer the hello within \(Durations.format(self?.config.limits.handshakeTimeout ?? 0))")
            }
            c.start()
        } catch {
            endAttempt(address, id: id, "cannot start a session: \(error)")
        }
    }

    func attemptOpened(_ address: String, id: Int, _ c: LineConnection) -> Bool {
        guard let peer = c.peerCertificate, peer.role == PKIRole.coordinator.rawValue else {
            log.error("\(c.peer) does not hold the coordinator's certificate")
            return false
        }
        guard attempts[address]?.id == id else { return false }
        deviceReport = config.nodeDevices.report(requested: requestedDevices)
        // The advertised address, else this end of the route to the coordinator.
        let advertised = config.advertiseAddress
            ?? (try? Endpoint(parsing: Sockets.localAddress(c.stream.fd), defaultPort: 0)).map(\.host).flatMap { IPv4Address($0) != nil ? $0 : nil }
        let hello = HelloRequest(name: config.name, hostname: AgentConfig.hostname(), platform: Agent.platform, capacity: capacity,
                                 labels: config.labels, agentVersion: Agent.version, load: probe.load(containers: runningContainers),
                                 tasks: observed.filter { $0.status != .exited && $0.status != .dead }.compactMap { adoptionStatus($0) },
                                 advertiseAddress: advertised, devices: deviceReport, overlay: config.overlay)
        let helloID = c.makeRequestID()
        attempts[address]?.hello = hello
        attempts[address]?.helloID = helloID
        c.send(WireEncoder.request(MessageType.hello, id: helloID, hello))
        return true
    }

    /// A live container's state before the assignment is known (for hello);
    /// ended ones are reported once the assignment says whether they were wanted.
    func adoptionStatus(_ o: ObservedTask) -> TaskStatus? {
        let fake = Assignment(taskID: o.taskID, serviceID: "", name: "", slot: 0, version: 0, spec: ServiceSpec(name: "x", image: "x"),
                              desired: .running, state: .starting)
        return AgentPlanner.status(fake, o)
    }

    /// A coordinator answered the hello of an attempt: the leader opens the
    /// session; a follower names the leader (asked at once), or none (no
    /// quorum yet: asked again after the backoff).
    func attemptAnswered(_ address: String, id: Int, _ env: Envelope) {
        guard let a = attempts[address], a.id == id, let c = a.conn, let helloID = a.helloID, env.re == helloID else { return }
        if env.error?.code == .notLeader {
            let message = env.error?.message ?? "not the leader"
            endAttempt(address, id: id, "\(address): \(message)")
            if let leader = Agent.leader(named: message), leader != address {
                if !coordinators.contains(leader) { coordinators.append(leader) }
                log.debug("\(address): \(message): asking it")
                attempt(leader)
            }
            return
        }
        guard env.type == MessageType.reply, let r = try? env.body(HelloReply.self), let hello = a.hello else {
            let why = env.error?.message ?? "unexpected answer to hello"
            refusedReason = why
            endAttempt(address, id: id, "the coordinator refused the session: \(why)")
            return
        }
        if let t = a.timer { loop.cancel(t) }
        attempts[address] = nil
        if let old = conn {
            // The silent session's coordinator no longer leads: its session is left.
            log.warning("\(address) leads now: leaving the session with \(sessionAddress ?? "?"), silent for \(Durations.format(monotonicSeconds() - (unansweredSince ?? monotonicSeconds())))")
            sessionEnded()
            old.close("another coordinator leads")
        }
        conn = c
        sessionAddress = address
        underlay = hello.advertiseAddress
        deviceReportSent = hello.devices
        // The others are closed, and nobody is asked again until this session ends.
        for (other, o) in attempts { endAttempt(other, id: o.id, "\(address) leads") }
        for t in retries.values { loop.cancel(t) }
        retries = [:]
        retryDelay = [:]
        helloAnswered(r)
    }

    /// The leader a follower's `notLeader` answer names ("… the leader is HOST:PORT"); nil: none.
    static func leader(named message: String) -> String? {
        guard let r = message.firstRange(of: " the leader is ") else { return nil }
        let leader = String(message[r.upperBound...]).trimmed
        return leader.isEmpty ? nil : leader
    }

    /// An attempt ended without a session: its connection closed, and that
    /// coordinator asked again after its backoff (while no session is open).
    func endAttempt(_ address: String, id: Int, _ why: String) {
        guard let a = attempts[address], a.id == id else { return }
        attempts[address] = nil
        if let t = a.timer { loop.cancel(t) }
        if let c = a.conn {
            c.close(why)
        } else {
            loop.unwatch(a.fd.rawValue)
            a.fd.close()
        }
        attemptFailed(address, why)
    }

    func attemptFailed(_ address: String, _ why: String) {
        guard lookingForLeader else { return }
        if why.contains("certificate") || why.contains("refused") && !why.contains("Connection refused") {
            // Not a matter of reaching it: asked again only every 30 s.
            if refusedReason == nil { refusedReason = why }
            log.error(why)
        } else if retryDelay[address] == nil {
            // Said once per coordinator and outage; its retries at debug level.
            log.warning(why)
        } else {
            log.debug(why)
        }
        scheduleRetry(address)
    }

    /// Asks `address` again soon (0.1 s doubling to at most a second, with
    /// jitter: well within the grace period); a cluster that refused this
    /// node is asked only every 30 s.
    func scheduleRetry(_ address: String) {
        guard retries[address] == nil, lookingForLeader else { return }
        let delay = retryDelay[address] ?? 0.1
        retryDelay[address] = min(delay * 2, refusedReason == nil ? 1 : 30)
        retries[address] = loop.after(delay * Double.random(in: 0.8...1.2)) { [weak self] in
            guard let self else { return }
            self.retries[address] = nil
            if self.coordinators.isEmpty || self.coordinators.contains(address) { self.attempt(address) }
        }
    }

    /// The leader accepted the hello: the session is open.
    func helloAnswered(_ r: HelloReply) {
        session = r.sessionID
        clusterCIDR = r.clusterCIDR
        refusedReason = nil
        if r.subnet != identity.subnet {
            identity.subnet = r.subnet
            try? identity.save(creds)
        }
        if let c = conn { learnCoordinators(c) }
        log.info("session open with \(sessionAddress ?? "?"): subnet \(r.subnet) of \(r.clusterCIDR), heartbeat every ~\(r.heartbeatMs) ms")
        scheduleHeartbeat(after: Double(r.heartbeatMs) / 1000)
        // A certificate of a retired root, or one due, is replaced now rather than at the next check.
        renewIfDue()
        if !trimmed {
            // Once settled into its steady state, the agent lets go of its start-up code.
            trimmed = true
            loop.after(10) { ResidentMemory.release() }
        }
    }

    /// The session closed: every coordinator is asked again at once, except
    /// the one that closed it, which waits its backoff (it may close the
    /// next session at once too).
    func closed(_ reason: String) {
        let last = sessionAddress
        sessionEnded()
        if loop.isStopping { return }
        if reason.contains("certificate") || reason.contains("refused") {
            refusedReason = reason
            log.error("the coordinator refused this node: \(reason)")
        } else {
            log.warning("session with \(last ?? "?") closed: \(reason)")
        }
        if let last { scheduleRetry(last) }
        connect()
    }

    /// Forgets the session (closed, or left for a new leader's).
    func sessionEnded() {
        conn = nil
        sessionAddress = nil
        session = nil
        haveAssignment = false
        replies.removeAll()
        renewing = false
        deviceReportSent = nil
        coordinatorAsksDevices = false
        if let t = heartbeatTimer { loop.cancel(t); heartbeatTimer = nil }
        if let w = watchdog { loop.cancel(w); watchdog = nil }
        unansweredSince = nil
        probing = false
    }

    func received(_ env: Envelope) {
        if env.type == MessageType.reply || env.type == MessageType.error {
            if let re = env.re, let handler = replies.removeValue(forKey: re) {
                handler(env)
            } else if env.type == MessageType.error {
                log.warning("the coordinator: \(env.error?.message ?? "error")")
                if env.error?.code == .unauthorized { refusedReason = env.error?.message }
            }
            return
        }
        switch env.type {
        case MessageType.assign:
            guard let m = try? env.body(AssignMessage.self) else {
                conn?.malformed(env.id, WireError(.badRequest, "assign: unreadable body"))
                return
            }
            assignments = Dictionary(m.tasks.map { ($0.taskID, $0) }, uniquingKeysWith: { a, _ in a })
            haveAssignment = true
            forgetUnusedSecrets()
            log.debug("assignment \(m.generation): \(m.tasks.count) tasks")
            reconcile()
        case MessageType.secretData:
            guard let m = try? env.body(SecretData.self) else {
                conn?.malformed(env.id, WireError(.badRequest, "secret.data: unreadable body"))
                return
            }
            secretData[m.id] = Array(m.data)
        case MessageType.overlay:
            guard let m = try? env.body(OverlayMessage.self) else {
                conn?.malformed(env.id, WireError(.badRequest, "overlay: unreadable body"))
                return
            }
            applyOverlay(m)
        case MessageType.devices:
            guard let m = try? env.body(DeviceRequest.self) else {
                conn?.malformed(env.id, WireError(.badRequest, "devices: unreadable body"))
                return
            }
            requestedDevices = Array(m.paths.filter(DeviceRequest.isAcceptable).prefix(DeviceRequest.maxPaths))
            coordinatorAsksDevices = true
            probeDevices()
        case MessageType.logs:
            guard let id = env.id, let r = try? env.body(LogsRequest.self) else {
                conn?.malformed(env.id, WireError(.badRequest, "logs: unreadable body"))
                return
            }
            serveLogs(r, id: id)
        case MessageType.caUpdate:
            guard let m = try? env.body(CAUpdate.self), let bundle = try? TrustBundle(pem: m.bundle) else {
                conn?.malformed(env.id, WireError(.badRequest, "ca.update: unreadable body"))
                return
            }
            updateTrust(bundle)
        default:
            if let id = env.id { conn?.sendError(to: id, WireError(.unknownType, "unknown message type \(env.type)")) }
        }
    }
}
