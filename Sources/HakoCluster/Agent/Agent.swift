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
    public private(set) var identity: NodeIdentity
    var tls: TLSContext
    var certificate: Certificate
    /// The roots this node trusts (`ca.crt`; two while the CA rotates).
    var trust: TrustBundle
    let capacity: Resources

    var conn: LineConnection?
    var session: String?
    var helloID: Int?
    var replies: [Int: (Envelope) -> Void] = [:]
    var heartbeatTimer: Int?
    var watchdog: Int?
    var reconnectDelay = 0.1
    var refusedReason: String?
    /// Every coordinator this node knows (learned at join, then from the
    /// leader at each session), and the one it tries next: a follower names
    /// the leader, an unreachable one is passed over.
    var coordinators: [String] = []
    var nextCoordinator = 0

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

    var endpoint: String { coordinators.isEmpty ? identity.coordinator : coordinators[nextCoordinator % coordinators.count] }

    /// The coordinators the leader last listed, one address a line, in the state dir.
    static let coordinatorsFile = "coordinators"

    static func knownCoordinators(_ configured: String, saved: String) -> [String] {
        var out: [String] = []
        let words = configured.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
            + ((try? FS.readString(saved)) ?? "").split(separator: "\n").map(String.init)
        for w in words where !w.isEmpty && !out.contains(w) { out.append(w) }
        return out
    }

    /// The next coordinator, after this one failed or closed the session.
    func passOver() {
        if !coordinators.isEmpty { nextCoordinator = (nextCoordinator + 1) % coordinators.count }
    }

    /// A follower named the leader (or none: no quorum).
    func redirected(_ message: String) {
        let marker = " the leader is "
        if let r = message.firstRange(of: marker) {
            let leader = String(message[r.upperBound...]).trimmed
            if let i = coordinators.firstIndex(of: leader) { nextCoordinator = i } else {
                coordinators.append(leader)
                nextCoordinator = coordinators.count - 1
            }
            reconnectDelay = 0.05
            log.info("\(message): moving there")
        } else {
            passOver()
            log.warning("\(message)")
        }
    }

    /// Asks the leader for every coordinator's address and keeps them (here and on disk).
    func learnCoordinators(_ c: LineConnection) {
        let id = c.makeRequestID()
        replies[id] = { [weak self] env in
            guard let self, env.type == MessageType.reply, let r = try? env.body(CoordinatorsReply.self) else { return }
            let current = self.endpoint
            var list = r.coordinators
            if !list.contains(current) { list.insert(current, at: 0) }
            guard list != self.coordinators else { return }
            self.coordinators = list
            self.nextCoordinator = list.firstIndex(of: current) ?? 0
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

    // MARK: session

    func connect() {
        guard conn == nil, !loop.isStopping else { return }
        let ep: Endpoint
        let fd: FileDescriptor
        do {
            ep = try Endpoint(parsing: endpoint, defaultPort: CoordinatorConfig.defaultPort)
            fd = try Sockets.connect(ep, timeout: 3)
        } catch {
            log.warning("cannot reach the coordinator: \(error)")
            passOver()
            scheduleReconnect()
            return
        }
        do {
            let c = try LineConnection(id: 1, fd: fd, peer: ep.description, context: tls, server: false, loop: loop, limits: config.limits)
            c.onOpen = { [unowned self] c in self.opened(c) }
            c.onMessage = { [unowned self] _, env in self.received(env) }
            c.onClose = { [unowned self] _, reason in self.closed(reason) }
            conn = c
            c.start()
        } catch {
            log.warning("cannot start a session: \(error)")
            scheduleReconnect()
        }
    }

    /// Retries soon (at most a second apart, well within the coordinator's
    /// grace period after its own restart); a coordinator that refused this
    /// node is asked again only every 30 s.
    func scheduleReconnect() {
        let delay = reconnectDelay * Double.random(in: 0.8...1.2)
        reconnectDelay = min(reconnectDelay * 2, refusedReason == nil ? 1 : 30)
        loop.after(delay) { [weak self] in self?.connect() }
    }

    func opened(_ c: LineConnection) -> Bool {
        guard let peer = c.peerCertificate, peer.role == PKIRole.coordinator.rawValue else {
            log.error("\(c.peer) does not hold the coordinator's certificate")
            return false
        }
        let id = c.makeRequestID()
        helloID = id
        // The advertised address, else this end of the route to the coordinator.
        underlay = config.advertiseAddress
            ?? (try? Endpoint(parsing: Sockets.localAddress(c.stream.fd), defaultPort: 0)).map(\.host).flatMap { IPv4Address($0) != nil ? $0 : nil }
        deviceReport = config.nodeDevices.report(requested: requestedDevices)
        deviceReportSent = deviceReport
        let hello = HelloRequest(name: config.name, hostname: AgentConfig.hostname(), platform: Agent.platform, capacity: capacity,
                                 labels: config.labels, agentVersion: Agent.version, load: probe.load(containers: runningContainers),
                                 tasks: observed.filter { $0.status != .exited && $0.status != .dead }.compactMap { adoptionStatus($0) },
                                 advertiseAddress: underlay, devices: deviceReport)
        replies[id] = { [unowned self] env in self.helloAnswered(env) }
        c.send(WireEncoder.request(MessageType.hello, id: id, hello))
        return true
    }

    /// A live container's state before the assignment is known (for hello);
    /// ended ones are reported once the assignment says whether they were wanted.
    func adoptionStatus(_ o: ObservedTask) -> TaskStatus? {
        let fake = Assignment(taskID: o.taskID, serviceID: "", name: "", slot: 0, version: 0, spec: ServiceSpec(name: "x", image: "x"),
                              desired: .running, state: .starting)
        return AgentPlanner.status(fake, o)
    }

    func helloAnswered(_ env: Envelope) {
        if env.error?.code == .notLeader {
            redirected(env.error?.message ?? "not the leader")
            conn?.close("not the leader")
            return
        }
        guard env.type == MessageType.reply, let r = try? env.body(HelloReply.self) else {
            let why = env.error?.message ?? "unexpected answer to hello"
            log.error("the coordinator refused the session: \(why)")
            refusedReason = why
            conn?.close("hello refused")
            return
        }
        session = r.sessionID
        clusterCIDR = r.clusterCIDR
        reconnectDelay = 0.1
        refusedReason = nil
        if r.subnet != identity.subnet {
            identity.subnet = r.subnet
            try? identity.save(creds)
        }
        if let c = conn { learnCoordinators(c) }
        log.info("session open with \(endpoint): subnet \(r.subnet) of \(r.clusterCIDR), heartbeat every ~\(r.heartbeatMs) ms")
        scheduleHeartbeat(after: Double(r.heartbeatMs) / 1000)
        // A certificate of a retired root, or one due, is replaced now rather than at the next check.
        renewIfDue()
        if !trimmed {
            // Once settled into its steady state, the agent lets go of its start-up code.
            trimmed = true
            loop.after(10) { ResidentMemory.release() }
        }
    }

    func closed(_ reason: String) {
        conn = nil
        session = nil
        haveAssignment = false
        replies.removeAll()
        renewing = false
        deviceReportSent = nil
        coordinatorAsksDevices = false
        if let t = heartbeatTimer { loop.cancel(t); heartbeatTimer = nil }
        if let w = watchdog { loop.cancel(w); watchdog = nil }
        if loop.isStopping { return }
        if reason == "not the leader" {
            // Already pointed at the leader (`redirected`).
        } else if reason.contains("certificate") || reason.contains("refused") {
            refusedReason = reason
            log.error("the coordinator refused this node: \(reason)")
        } else {
            log.warning("session with \(endpoint) closed: \(reason)")
            if coordinators.count > 1 { passOver() }
        }
        scheduleReconnect()
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
            watchdog = loop.after(10) { [weak self] in
                self?.watchdog = nil
                self?.conn?.close("no answer to a heartbeat for 10 s")
            }
        }
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
                    self.reconcile()
                case .failure(let e):
                    self.log.warning("cannot list the node's containers: \(e)")
                }
            }
        }
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
                    let id = try runtime.start(a, node: node, subnet: subnet, overlay: options, files: try Agent.files(for: a, data: held))
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
                if case .remove(let t, let c) = action { self.log.info("removed container \(c.prefix(12)) of task \(t.prefix(12))") }
                if case .start(let a) = action, result?.state == .running, a.spec.network == ServiceSpec.clusterNetwork, !self.bridgeTuned,
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
