#if canImport(Glibc)
import Glibc
#endif
import HakoNetwork
import HakoSystem
import HakoTransport

/// `hako agent`: one per node. Keeps a mutual-TLS session with the
/// coordinator, heartbeats at the period the coordinator chooses, runs its
/// assigned tasks through the node's own engine, reports every transition,
/// adopts what runs after its own restart, and renews its certificate.
/// The event loop never blocks on the engine: operations run on workers.
///
/// Sendable by confinement: every property is read and written on the
/// loop's thread only; workers touch none and hand results back with `post`.
public final class Agent: @unchecked Sendable {
    public static let version = "0.1.0"

    let config: AgentConfig
    let runtime: any TaskRuntime
    /// nil: the node joins no overlay (tests without a kernel).
    let overlay: (any NodeOverlay)?
    var probe: any NodeProbe
    let log: ClusterLog
    let loop: PollLoop
    let workers: WorkerPool
    let creds: NodeCredentials
    public internal(set) var identity: NodeIdentity
    var tls: TLSContext
    var certificate: Certificate
    /// The roots this node trusts (`ca.crt`; two while the CA rotates).
    var trust: TrustBundle
    let capacity: Resources

    var conn: LineConnection?
    var session: String?
    var replies: [Int: (Envelope) -> Void] = [:]
    var heartbeatTimer: Int?
    var watchdog: Int?
    var refusedReason: String?
    /// Every coordinator this node knows (learned at join, then from the
    /// leader at each session).
    var coordinators: [String] = []
    /// The coordinator of the open session.
    var sessionAddress: String?
    /// Sessions being opened, by coordinator address: every known
    /// coordinator is asked at once (`connect`).
    var attempts: [String: SessionAttempt] = [:]
    /// Coordinators to be asked again, by address: the timer, and the
    /// backoff for the time after (0.1 s doubling to 1 s, with jitter).
    var retries: [String: Int] = [:]
    var retryDelay: [String: Double] = [:]
    var nextAttemptID = 1
    /// Since when the session's heartbeats go unanswered (nil: answered).
    var unansweredSince: Double?
    /// The session's coordinator went silent: the others are asked who
    /// leads while the session stays open (`heartbeatSilence`).
    var probing = false

    var assignments: [String: Assignment] = [:]
    /// Secrets' and configs' data by id, as the coordinator sent it (`secret.data`):
    /// held in memory only, dropped once no assigned task uses it.
    var secretData: [String: [UInt8]] = [:]
    var haveAssignment = false
    var observed: [ObservedTask] = []
    var runningContainers = 0
    var observing = false
    /// Bumped by every operation that changes containers: an observation
    /// that began before one ended is stale and is taken again.
    var epoch = 0
    var busy: Set<String> = []
    var sent: [String: TaskStatus] = [:]
    var current: [String: TaskState] = [:]
    var renewing = false
    var trimmed = false
    /// A settling is scheduled: the last operation of a burst ended.
    var settling = false
    /// The last peer map: applied again once the node's bridge exists (its MTU).
    var lastOverlay: OverlayMessage?
    /// This node's underlay address as sent in hello, and the cluster CIDR
    /// the hello's answer gave: a task started before the first peer map
    /// still gets the overlay's MTU and masquerade exception.
    var underlay: String?
    var clusterCIDR: String?
    var bridgeTuned = false
    var metricsServer: MetricsServer?
    /// The device paths the coordinator last asked about (`devices`), kept
    /// across sessions: the next hello reports them too.
    var requestedDevices: [String] = []
    /// What the node last found of its devices, and what this session's
    /// coordinator holds (sent in hello or `devices.report`).
    var deviceReport: [String] = []
    var deviceReportSent: [String]?
    /// This session's coordinator asks about devices (an older one would refuse a report).
    var coordinatorAsksDevices = false
    var probingDevices = false
    var probeDevicesAgain = false

    public init(config: AgentConfig, runtime: any TaskRuntime, overlay: (any NodeOverlay)? = nil, probe: any NodeProbe = ProcNodeProbe(),
                log: ClusterLog) throws {
        self.config = config
        self.runtime = runtime
        self.overlay = overlay
        self.probe = probe
        self.log = log
        creds = NodeCredentials(stateDir: config.stateDir)
        guard creds.exists, let id = NodeIdentity.load(creds) else {
            throw ClusterError.config(key: "state_dir", reason: "\(config.stateDir) holds no node identity: join first with `hako agent --config FILE --join TOKEN COORDINATOR`")
        }
        identity = id
        let (trust, cert, key) = try creds.load()
        certificate = cert
        self.trust = trust
        tls = try TLSContext.client(certificate: cert, key: key, trusting: trust.roots)
        let detected = probe.capacity()
        capacity = Resources(cpuMillis: config.cpuMillis > 0 ? config.cpuMillis : detected.cpuMillis,
                             memory: config.memory > 0 ? config.memory : detected.memory)
        coordinators = Agent.knownCoordinators(config.coordinator ?? identity.coordinator, saved: creds.dir + "/" + Agent.coordinatorsFile)
        loop = try PollLoop()
        // Before the workers first allocate: one heap arena, not one per worker.
        ResidentMemory.shareOneHeapArena()
        workers = WorkerPool(threads: config.workers)
        try startMetrics()
    }

    /// The coordinators the leader last listed, one address a line, in the state dir.
    static let coordinatorsFile = "coordinators"

    static func knownCoordinators(_ configured: String, saved: String) -> [String] {
        var out: [String] = []
        let words = configured.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
            + ((try? FS.readString(saved)) ?? "").split(separator: "\n").map(String.init)
        for w in words where !w.isEmpty && !out.contains(w) { out.append(w) }
        return out
    }

    /// Asks the leader for every coordinator's address and keeps them (here and on disk).
    func learnCoordinators(_ c: LineConnection) {
        let id = c.makeRequestID()
        replies[id] = { [weak self] env in
            guard let self, env.type == MessageType.reply, let r = try? env.body(CoordinatorsReply.self) else { return }
            var list = r.coordinators
            if let current = self.sessionAddress, !list.contains(current) { list.insert(current, at: 0) }
            guard list != self.coordinators else { return }
            self.coordinators = list
            try? FS.writeAtomic(self.creds.dir + "/" + Agent.coordinatorsFile, list.joined(separator: "\n") + "\n", mode: 0o644)
        }
        c.send(WireEncoder.request(MessageType.coordinators, id: id, EmptyBody()))
    }

    /// Runs until `stop()`.
    public func run() {
        log.info("node \(config.name) (\(identity.nodeID.prefix(12))) of cluster \(identity.clusterID.prefix(12)); subnet \(identity.subnet); engine root \(config.root)")
        if let words = TLSClock.ownCertificate(notBefore: certificate.notBefore, notAfter: certificate.notAfter,
                                               rejoin: "remove \(config.stateDir) and join again with a new token") {
            log.error(words)
        }
        // What runs already, before the first hello: the session starts by adopting it.
        if let (tasks, running) = try? runtime.observe() {
            observed = tasks
            runningContainers = running
        }
        connect()
        scheduleObserve()
        scheduleDeviceProbe()
        scheduleRenewCheck()
        loop.run()
        conn?.close("agent stopping")
        workers.shutdown()
        log.info("stopped (containers keep running)")
    }

    /// Thread-safe.
    public func stop() { loop.stop() }

    // MARK: heartbeats

    func scheduleHeartbeat(after seconds: Double) {
        if let t = heartbeatTimer { loop.cancel(t) }
        heartbeatTimer = loop.after(seconds) { [weak self] in self?.sendHeartbeat() }
    }

    /// While a heartbeat is unanswered, another is written this often. A
    /// beat written while the link is down waits in the socket under TCP's
    /// backoff (0.2, 0.4, 0.8, 1.6 s…): after a 1.5 s link blip its next try
    /// could come 3 s after the cut, and the coordinator would call the node
    /// down. Any new write makes the kernel try the queued bytes at once, so
    /// the beats get through within this interval of the link's return.
    static let heartbeatRetry = 0.25

    func sendHeartbeat() {
        heartbeatTimer = nil
        guard let c = conn, let s = session else { return }
        let id = c.makeRequestID()
        let hb = Heartbeat(sessionID: s, load: probe.load(containers: runningContainers), tasks: current)
        let sentAt = monotonicSeconds()
        replies[id] = { [unowned self] env in
            if let w = self.watchdog { self.loop.cancel(w); self.watchdog = nil }
            self.unansweredSince = nil
            if self.probing { self.stopProbing() }
            guard env.type == MessageType.reply, let r = try? env.body(HeartbeatReply.self) else {
                self.log.warning("heartbeat refused: \(env.error?.message ?? "?")")
                self.conn?.close("heartbeat refused")
                return
            }
            // The period counts from this beat's sending, not from the reply
            // (every answered beat reschedules; the last answer decides).
            self.scheduleHeartbeat(after: max(0.01, Double(max(10, r.nextMs)) / 1000 - (monotonicSeconds() - sentAt)))
        }
        c.send(WireEncoder.request(MessageType.heartbeat, id: id, hb))
        // Unanswered soon: write another (see heartbeatRetry).
        scheduleHeartbeat(after: Agent.heartbeatRetry)
        if watchdog == nil {
            // A coordinator that stops answering is as good as gone: reconnect.
            unansweredSince = sentAt
            watchdog = loop.after(10) { [weak self] in
                self?.watchdog = nil
                self?.conn?.close("no answer to a heartbeat for 10 s")
            }
        } else if !probing, let since = unansweredSince, sentAt - since >= Agent.heartbeatSilence, coordinators.count > 1 {
            // The leader may be gone without a word (its Pi lost power: no
            // FIN, its address a black hole): the others are asked who leads
            // now, and a new leader's session replaces this one — within the
            // grace period the new leader gives every node.
            probing = true
            log.warning("no answer from \(sessionAddress ?? "?") for \(Durations.format(sentAt - since)): asking the other coordinators who leads")
            connect()
        }
    }

    /// Heartbeats unanswered this long make the agent ask the other
    /// coordinators who leads (the session stays open meanwhile).
    static let heartbeatSilence = 1.0

    /// The session's coordinator answered again: the others are no longer asked.
    func stopProbing() {
        probing = false
        for (address, a) in attempts { endAttempt(address, id: a.id, "\(sessionAddress ?? "?") answers again") }
        for t in retries.values { loop.cancel(t) }
        retries = [:]
        retryDelay = [:]
    }

    // MARK: devices

    /// How often the node looks at its devices again between requests (a
    /// device plugged in or removed is reported within this).
    static let deviceProbeInterval = 10.0

    func scheduleDeviceProbe() {
        loop.after(Agent.deviceProbeInterval) { [weak self] in
            guard let self else { return }
            if self.coordinatorAsksDevices { self.probeDevices() }
            self.scheduleDeviceProbe()
        }
    }

    /// Looks at the node's devices on a worker, then reports them if they changed.
    func probeDevices() {
        guard !probingDevices else {
            probeDevicesAgain = true
            return
        }
        probingDevices = true
        let devices = config.nodeDevices
        let requested = requestedDevices
        workers.submit(key: "devices") { [loop] in
            let found = devices.report(requested: requested)
            loop.post { [weak self] in
                guard let self else { return }
                self.probingDevices = false
                self.deviceReport = found
                self.sendDeviceReport()
                if self.probeDevicesAgain {
                    self.probeDevicesAgain = false
                    self.probeDevices()
                }
            }
        }
    }

    /// Sends what the node found when this session's coordinator holds something else.
    func sendDeviceReport() {
        guard coordinatorAsksDevices, let c = conn, let s = session, deviceReport != deviceReportSent else { return }
        let id = c.makeRequestID()
        replies[id] = { [weak self] env in
            if env.type != MessageType.reply { self?.log.warning("device report refused: \(env.error?.message ?? "?")") }
        }
        c.send(WireEncoder.request(MessageType.devicesReport, id: id, DeviceReport(sessionID: s, devices: deviceReport)))
        deviceReportSent = deviceReport
        log.info("devices: \(deviceReport.isEmpty ? "none" : deviceReport.joined(separator: ", "))")
    }

    // MARK: tasks

    func scheduleObserve() {
        loop.after(config.observeInterval) { [weak self] in
            guard let self else { return }
            self.observe()
            self.scheduleObserve()
        }
    }

    /// Looks at the node's containers on a worker; reconciles with the result.
    func observe() {
        guard !observing else { return }
        observing = true
        let runtime = self.runtime
        let started = epoch
        workers.submit(key: "observe") { [loop] in
            let r = Result { try runtime.observe() }
            loop.post { [weak self] in
                guard let self else { return }
                self.observing = false
                if self.epoch != started {
                    self.observe()
                    return
                }
                switch r {
                case .success(let (tasks, running)):
                    self.observed = tasks
                    self.runningContainers = running
                    self.overlay?.containers(self.dnsMembers())
                    self.reconcile()
                case .failure(let e):
                    self.log.warning("cannot list the node's containers: \(e)")
                }
            }
        }
    }

    /// Each address of each running task's container → the networks it is
    /// on, in its interfaces' order (the cluster network first, then the
    /// service's networks): what its queries to the node's DNS may see.
    func dnsMembers() -> [IPv4Address: [String]] {
        var out: [IPv4Address: [String]] = [:]
        for t in observed where t.status == .running {
            let order = assignments[t.taskID]?.spec.networks.map(\.id) ?? []
            let ids = order.filter { t.networkAddresses[$0] != nil } + t.networkAddresses.keys.filter { !order.contains($0) }.sorted()
            let views = (t.address == nil ? [] : [ClusterDNS.clusterView]) + ids
            for a in [t.address].compactMap({ $0 }) + ids.compactMap({ t.networkAddresses[$0] }) {
                if let ip = IPv4Address(a) { out[ip] = views }
            }
        }
        return out
    }

    /// Plans against the assignment (only while a session holds one: a node
    /// cut off from the coordinator changes nothing), reports changes, runs actions.
    func reconcile() {
        guard session != nil, haveAssignment else { return }
        let (actions, statuses) = AgentPlanner.plan(assignments: Array(assignments.values), observed: observed, busy: busy)
        report(statuses)
        for a in actions { perform(a) }
    }

    /// Sends the statuses that differ from the last ones sent.
    func report(_ statuses: [TaskStatus]) {
        var changed: [TaskStatus] = []
        for s in statuses where sent[s.taskID] != s {
            sent[s.taskID] = s
            current[s.taskID] = s.state
            // The coordinator now knows this state; it does not resend the assignment for it.
            assignments[s.taskID]?.state = s.state
            changed.append(s)
        }
        // Forget tasks no longer assigned.
        for k in current.keys where assignments[k] == nil { current[k] = nil; sent[k] = nil }
        guard !changed.isEmpty, let c = conn, let s = session else { return }
        for st in changed {
            let name = assignments[st.taskID].map { "\($0.name).\($0.taskID.prefix(12))" } ?? st.taskID
            log.info("task \(name): \(st.state.rawValue)\(st.message.isEmpty ? "" : " (\(st.message))")")
        }
        c.send(WireEncoder.request(MessageType.taskStatus, id: nil, TaskStatusReport(sessionID: s, statuses: changed)))
    }

    func perform(_ action: AgentAction) {
        let key = action.key
        busy.insert(key)
        let runtime = self.runtime
        let node = identity.nodeID
        let subnet = identity.subnet
        let overlayMap = lastOverlay
        // Without an overlay (opted out, or beside the coordinator on loopback) the engine's defaults stand.
        let networkBase = overlay == nil ? nil : clusterCIDR.flatMap { cidr in underlay.map { (cidr, $0) } }
        if case .start(let a) = action { report([TaskStatus(taskID: a.taskID, state: .starting)]) }
        // The task's secrets and configs, copied for the worker (they stay in memory only).
        let held = secretData
        var existing: Assignment?
        if case .startExisting(let t, _) = action { existing = assignments[t] }
        let existingTask = existing
        let devices = config.nodeDevices
        workers.submit(key: key) { [loop] in
            var outcome: TaskStatus?
            do {
                switch action {
                case .start(let a):
                    if let why = devices.refusal(a.spec.container.devices.map(\.host)) { throw ClusterError.invalid(why) }
                    let options = overlayMap.flatMap { ClusterNetworkOptions.from($0, node: node) }
                        ?? networkBase.flatMap { ClusterNetworkOptions.from(clusterCIDR: $0.0, underlay: $0.1) }
                    let id = try runtime.start(a, node: node, subnet: subnet, overlay: options, networks: NodeNetwork.from(overlayMap, node: node),
                                               files: try Agent.files(for: a, data: held))
                    outcome = TaskStatus(taskID: a.taskID, state: .running, containerID: id)
                case .startExisting(let t, let c):
                    if let why = devices.refusal(existingTask?.spec.container.devices.map(\.host) ?? []) { throw ClusterError.invalid(why) }
                    try runtime.startExisting(c, files: try Agent.files(for: existingTask, data: held))
                    outcome = TaskStatus(taskID: t, state: .running, containerID: c)
                case .stop(let t, let c, let timeout):
                    try runtime.stop(c, timeout: timeout)
                    outcome = TaskStatus(taskID: t, state: .shutdown, containerID: c)
                case .remove(_, let c):
                    try? runtime.stop(c, timeout: nil)
                    try runtime.remove(c)
                }
            } catch {
                if case .start(let a) = action {
                    outcome = TaskStatus(taskID: a.taskID, state: .rejected, message: "\(error)")
                } else if case .startExisting(let t, let c) = action {
                    outcome = TaskStatus(taskID: t, state: .rejected, containerID: c, message: "\(error)")
                }
            }
            let result = outcome
            loop.post { [weak self] in
                guard let self else { return }
                self.busy.remove(key)
                self.epoch += 1
                if self.busy.isEmpty { self.settleAfterBurst() }
                self.applyLocally(action, result)
                if let result, self.assignments[result.taskID] != nil { self.report([result]) }
                if case .remove(let t, let c) = action {
                    self.log.info("removed container \(c.prefix(12)) of task \(t.prefix(12))")
                    // The engine network of a cluster network that left the map goes once its last container is gone.
                    if let m = self.lastOverlay { self.applyOverlay(m) }
                }
                if case .start(let a) = action, result?.state == .running, a.spec.isOnClusterNetwork, !self.bridgeTuned,
                   let m = self.lastOverlay {
                    // The first task made the node's bridge: it takes the overlay's MTU now.
                    self.bridgeTuned = true
                    self.applyOverlay(m)
                }
                self.observe()
            }
        }
    }

    /// Starting and stopping containers runs much code and allocates on the
    /// workers; none of it is needed again until the next operation. Once the
    /// node has been quiet for a few seconds, the heap's free pages and the
    /// code pages go back to the kernel (what the steady loop runs faults
    /// straight back in).
    func settleAfterBurst() {
        guard !settling, trimmed else { return }
        settling = true
        loop.after(5) { [weak self] in
            guard let self else { return }
            self.settling = false
            // Not while another burst runs: its end schedules the next settling.
            guard self.busy.isEmpty else { return }
            ResidentMemory.release()
        }
    }

    /// What an operation did, recorded in `observed` until the next observation confirms it.
    func applyLocally(_ action: AgentAction, _ result: TaskStatus?) {
        switch action {
        case .start(let a):
            if let r = result, r.state == .running, let c = r.containerID {
                // An observation made during the start may hold it already (as created).
                observed.removeAll { $0.containerID == c }
                observed.append(ObservedTask(taskID: a.taskID, containerID: c, status: .running, created: Timestamp.now().secondsSince1970))
            }
        case .startExisting(_, let c):
            if result?.state == .running, let i = observed.firstIndex(where: { $0.containerID == c }) { observed[i].status = .running }
        case .stop(_, let c, _):
            if let i = observed.firstIndex(where: { $0.containerID == c }) { observed[i].status = .exited }
        case .remove(_, let c):
            observed.removeAll { $0.containerID == c }
        }
    }

    func serveLogs(_ r: LogsRequest, id: Int) {
        let runtime = self.runtime
        let containers = r.taskIDs.compactMap { t in observed.first { $0.taskID == t }.map { (t, $0.containerID) } }
        let budget = max(4096, min(r.maxBytes, config.limits.maxLine - 4096))
        workers.submit(key: "logs-\(id)") { [loop] in
            var entries: [LogEntry] = []
            var truncated = false
            let each = budget / max(1, containers.count)
            for (task, container) in containers {
                guard let (lines, cut) = try? runtime.logs(container, tail: r.tail, since: r.since, until: r.until, maxBytes: each) else { continue }
                truncated = truncated || cut
                entries += lines.map { LogEntry(taskID: task, time: $0.time, stream: $0.stream, text: $0.text) }
            }
            let reply = WireEncoder.reply(to: id, LogsReply(entries: entries, truncated: truncated))
            loop.post { [weak self] in self?.conn?.send(reply) }
        }
    }

    // MARK: certificate renewal

    func scheduleRenewCheck() {
        loop.after(min(60, max(1, (certificate.notAfter - certificate.notBefore) / 20))) { [weak self] in
            guard let self else { return }
            self.renewIfDue()
            self.scheduleRenewCheck()
        }
    }

    /// Past `renew_at` of its lifetime, the certificate is replaced: a new key,
    /// a request over the current session, the new pair written in one rename.
    func renewIfDue() {
        let now = Timestamp.now().secondsSince1970
        let life = certificate.notAfter - certificate.notBefore
        if let signing = trust.signing, (try? certificate.verify(against: signing)) == nil {
            renew(trusting: trust, reason: "reissued by the new CA \(signing.fingerprint.prefix(16))")
        } else if now > certificate.notBefore + life * config.renewAt {
            renew(trusting: trust, reason: "renewed")
        }
    }

    /// The coordinator's roots changed (`ca.update`: a CA rotation began or
    /// ended). The bundle is kept, then a certificate its signing root did
    /// not sign is replaced over this session at once.
    func updateTrust(_ bundle: TrustBundle) {
        guard let signing = bundle.signing else { return }
        defer {
            // Retried by the periodic check (`renewIfDue`) if this one fails.
            if (try? certificate.verify(against: signing)) == nil {
                renew(trusting: bundle, reason: "reissued by the new CA \(signing.fingerprint.prefix(16))")
            }
        }
        guard bundle.fingerprints != trust.fingerprints else { return }
        do {
            let (_, cert, key) = try creds.load()
            try creds.save(trust: bundle, cert: nil, key: nil)
            tls = try TLSContext.client(certificate: cert, key: key, trusting: bundle.roots)
            trust = bundle
            log.info("the cluster now trusts \(bundle.roots.count == 1 ? "one CA" : "\(bundle.roots.count) CAs"): \(bundle.fingerprints.map { String($0.prefix(16)) }.joined(separator: ", "))")
        } catch {
            log.error("cannot keep the cluster's CA bundle: \(error)")
        }
    }

    /// A new key and a certificate for it from the coordinator, checked
    /// against `bundle`'s signing root; bundle, key and certificate written
    /// (the bundle first, `NodeCredentials.save`) and used from the next
    /// connection on. The session itself goes on.
    func renew(trusting bundle: TrustBundle, reason: String) {
        guard !renewing, let c = conn, session != nil, let signing = bundle.signing else { return }
        do {
            let key = try PrivateKey.generate()
            let csr = try CertificateRequest(key: key)
            let id = c.makeRequestID()
            renewing = true
            replies[id] = { [unowned self] env in
                self.renewing = false
                do {
                    guard env.type == MessageType.reply else { throw ClusterError.security(env.error?.message ?? "refused") }
                    let cert = try Certificate(pem: try env.body(RenewReply.self).certificate)
                    try cert.verify(against: signing)
                    guard cert.publicKeyMatches(key), cert.commonName == self.identity.nodeID else { throw ClusterError.security("not this node's certificate") }
                    // The roots may have changed while the request was out
                    // (a rotation ended): the newest bundle is the one kept.
                    let roots = self.trust.signing.map { (try? cert.verify(against: $0)) != nil } == true ? self.trust : bundle
                    try self.creds.save(trust: roots, cert: cert, key: key)
                    self.tls = try TLSContext.client(certificate: cert, key: key, trusting: roots.roots)
                    self.certificate = cert
                    self.trust = roots
                    self.log.info("certificate \(reason): valid until \(Timestamp(seconds: Int64(cert.notAfter)).rfc3339)")
                } catch {
                    self.log.error("certificate renewal failed: \(error)")
                }
            }
            c.send(WireEncoder.request(MessageType.renew, id: id, RenewRequest(csr: try csr.pem())))
        } catch {
            log.error("cannot renew the certificate: \(error)")
        }
    }
}
