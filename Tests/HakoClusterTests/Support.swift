import HakoImage
import Foundation
@testable import HakoCluster
import HakoSystem
import Synchronization
import Testing

/// A clock tests move by hand.
final class ManualClock: ClusterClock, @unchecked Sendable {
    private let t = Mutex<(mono: Double, wall: Double)>((1000, Timestamp.now().secondsSince1970))
    func monotonic() -> Double { t.withLock { $0.mono } }
    func wall() -> Double { t.withLock { $0.wall } }
    func advance(_ s: Double) { t.withLock { $0.mono += s; $0.wall += s } }
}

/// A temporary directory removed at deinit.
final class TempDir: @unchecked Sendable {
    let path: String
    init(_ tag: String = "cluster") {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("hako-\(tag)-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func envelope<B: Encodable>(_ type: String, id: Int? = 1, _ body: B) throws -> Envelope {
    var line = WireEncoder.request(type, id: id, body)
    line.removeLast()
    return try WireDecoder.decode(line)
}

func decodeLine(_ line: [UInt8]) throws -> Envelope {
    var l = line
    if l.last == 0x0a { l.removeLast() }
    return try WireDecoder.decode(l)
}

/// A coordinator core on a fresh cluster in a temp dir, with a manual clock and a seeded generator.
final class CoreFixture {
    let dir = TempDir("core")
    let clock = ManualClock()
    var config = CoordinatorConfig()
    var core: CoordinatorCore!
    var nextConnection = 100

    init(configure: (inout CoordinatorConfig) -> Void = { _ in }) throws {
        config.dataDir = dir.path + "/coord"
        config.heartbeatPeriod = 1
        config.heartbeatJitter = 0.2
        config.downAfter = 3
        configure(&config)
        _ = try ClusterInit.run(config, adminDir: dir.path + "/admin", now: clock.wall())
        try reopen()
    }

    /// A new core on the same store: what a coordinator restart does.
    func reopen(trust: TrustBundle? = nil) throws {
        let store = try Store(path: config.databasePath)
        let id = try store.load().meta["cluster_id"] ?? ""
        let ca = try CoordinatorPKI(dataDir: config.dataDir).loadCA(clusterID: id)
        core = try CoordinatorCore(config: config, store: store, ca: ca, trust: trust, clock: clock, random: SeededRandom(seed: 42))
        core.secretBox = try SecretBox.loadOrCreate(dataDir: config.dataDir)
    }

    @discardableResult
    func admin<B: Encodable, R: Decodable>(_ type: String, _ body: B, as: R.Type) throws -> R {
        let reply = core.handle(try envelope(type, body), from: .admin, connection: 1, address: "test")
        core.flush()
        let env = try decodeLine(try #require(reply))
        if env.type == MessageType.error { throw ClusterError.wire(code: env.error?.code.rawValue ?? "", message: env.error?.message ?? "") }
        return try env.body(R.self)
    }

    func token() throws -> String {
        try admin(MessageType.tokenCreate, TokenCreateRequest(ttl: nil), as: TokenReply.self).token
    }

    func tick(_ seconds: Double = 0) {
        clock.advance(seconds)
        core.tick()
    }
}

/// An agent simulated in-process: joins through the core, holds a session,
/// runs what it is assigned (instantly) and reports it.
final class SimNode {
    let fixture: CoreFixture
    let name: String
    var id = ""
    var connection = 0
    var session = ""
    var assignment: [Assignment] = []
    /// Tasks this node "runs": task id → state.
    var running: [String: TaskState] = [:]
    var labels: [String: String]
    var capacity: Resources
    var platform: PlatformSpec
    var load = NodeLoad(cpu: 0.1, load1: 0.1, memoryTotal: 8 << 30, memoryAvailable: 6 << 30, containers: 0)
    /// A node that does not start what it is given (to see the coordinator wait).
    var frozen = false
    /// The address its sessions come from.
    let underlay: String
    /// Peer maps received (`overlay`).
    var overlays: [OverlayMessage] = []
    /// Secrets' and configs' data received (`secret.data`), by id, and the message types in the order they came.
    var secretData: [String: [UInt8]] = [:]
    var received: [String] = []
    /// The host devices it reports at hello.
    var devices: [String]?
    /// The device paths the coordinator asked about (`devices`), in order.
    var deviceRequests: [[String]] = []
    /// What its hello says of the overlay (false: opted out).
    var overlay: Bool?

    init(_ f: CoreFixture, name: String, labels: [String: String] = [:], capacity: Resources = Resources(cpuMillis: 4000, memory: 8 << 30),
         platform: PlatformSpec = PlatformSpec(architecture: "arm64", variant: "v8"), underlay: String = "10.0.0.1", devices: [String]? = nil, overlay: Bool? = nil) throws {
        fixture = f
        self.devices = devices
        self.overlay = overlay
        self.underlay = underlay
        self.name = name
        self.labels = labels
        self.capacity = capacity
        self.platform = platform
        let key = try PrivateKey.generate()
        let join = JoinRequest(token: try f.token(), csr: try CertificateRequest(key: key).pem(), name: name, hostname: name,
                               platform: platform, capacity: capacity, labels: labels, agentVersion: "test")
        let reply = f.core.handle(try envelope(MessageType.join, join), from: .anonymous, connection: 2, address: "10.0.0.1:1")
        f.core.flush()
        let env = try decodeLine(try #require(reply))
        id = try env.body(JoinReply.self).nodeID
        try connect()
    }

    var core: CoreFixture { fixture }

    func connect() throws {
        fixture.nextConnection += 1
        connection = fixture.nextConnection
        let hello = HelloRequest(name: name, hostname: name, platform: platform, capacity: capacity, labels: labels, agentVersion: "test",
                                 load: load, tasks: running.map { TaskStatus(taskID: $0.key, state: $0.value) }, devices: devices,
                                 overlay: overlay)
        let reply = fixture.core.handle(try envelope(MessageType.hello, hello), from: .node(id), connection: connection, address: "\(underlay):2")
        fixture.core.flush()
        session = try decodeLine(try #require(reply)).body(HelloReply.self).sessionID
    }

    func disconnect() { fixture.core.connectionClosed(connection, peer: .node(id)) }

    func heartbeat() throws {
        let hb = Heartbeat(sessionID: session, load: load, tasks: running)
        _ = fixture.core.handle(try envelope(MessageType.heartbeat, hb), from: .node(id), connection: connection, address: "x")
        fixture.core.flush()
    }

    /// `devices.report` on this session; the reply (an error, for a refused report).
    @discardableResult
    func reportDevices(_ devices: [String], session: String? = nil) throws -> Envelope {
        let reply = fixture.core.handle(try envelope(MessageType.devicesReport, DeviceReport(sessionID: session ?? self.session, devices: devices)),
                                        from: .node(id), connection: connection, address: "x")
        fixture.core.flush()
        return try decodeLine(try #require(reply))
    }

    func report(_ statuses: [TaskStatus]) throws {
        _ = fixture.core.handle(try envelope(MessageType.taskStatus, id: nil, TaskStatusReport(sessionID: session, statuses: statuses)),
                                from: .node(id), connection: connection, address: "x")
        fixture.core.flush()
    }

    /// Takes the latest assignment sent to this node, and acts on it like an agent.
    func act(_ outgoing: [Outgoing]) throws {
        for o in outgoing {
            guard case .send(let c, let line) = o, c == connection else { continue }
            let env = try decodeLine(line)
            if env.type == MessageType.assign {
                assignment = try env.body(AssignMessage.self).tasks
                // As the agent: the data no assigned task refers to is forgotten.
                let referred = Set(assignment.flatMap { $0.spec.fileReferences.map(\.ref.id) })
                secretData = secretData.filter { referred.contains($0.key) }
            }
            if env.type == MessageType.overlay { overlays.append(try env.body(OverlayMessage.self)) }
            if env.type == MessageType.devices { deviceRequests.append(try env.body(DeviceRequest.self).paths) }
            if env.type == MessageType.secretData {
                let d = try env.body(SecretData.self)
                secretData[d.id] = Array(d.data)
            }
            received.append(env.type)
        }
        guard !frozen else { return }
        var reports: [TaskStatus] = []
        let assigned = Set(assignment.map(\.taskID))
        for a in assignment {
            if a.desired == .running && running[a.taskID] == nil && [.assigned, .starting].contains(a.state) {
                running[a.taskID] = .running
                reports.append(TaskStatus(taskID: a.taskID, state: .running, containerID: "c-" + a.taskID))
            } else if a.desired == .shutdown, let st = running[a.taskID], st == .running {
                running[a.taskID] = .shutdown
                reports.append(TaskStatus(taskID: a.taskID, state: .shutdown, containerID: "c-" + a.taskID))
            }
        }
        for t in running.keys where !assigned.contains(t) { running[t] = nil }
        if !reports.isEmpty { try report(reports) }
    }

    /// Tasks this node runs right now.
    var live: [String] { running.filter { $0.value == .running }.map(\.key) }
}

/// Runs the core and the simulated nodes until nothing changes (bounded).
func settle(_ f: CoreFixture, _ nodes: [SimNode], rounds: Int = 20) throws {
    for _ in 0..<rounds {
        f.core.tick()
        let out = f.core.takeOutgoing()
        let before = nodes.map(\.running)
        for n in nodes { try n.act(out) }
        if out.isEmpty && nodes.map(\.running) == before { return }
    }
}
