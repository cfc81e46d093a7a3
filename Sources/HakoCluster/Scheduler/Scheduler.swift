import HakoImage
import HakoSystem

/// A node as the scheduler sees it: one value of a snapshot, updated in the
/// snapshot as tasks are placed on it.
public struct SchedulerNode: Sendable {
    public var record: NodeRecord
    public var status: NodeStatus
    /// Reservations of the live tasks already on the node.
    public var reserved: Resources
    public var load: NodeLoad
    /// Live tasks on the node, and per service.
    public var tasks: Int
    public var serviceTasks: [String: Int]
    /// Fixed host ports the live tasks publish ("tcp/8080").
    public var hostPorts: Set<String>

    public init(record: NodeRecord, status: NodeStatus, reserved: Resources = .zero, load: NodeLoad = NodeLoad(),
                tasks: Int = 0, serviceTasks: [String: Int] = [:], hostPorts: Set<String> = []) {
        self.hostPorts = hostPorts
        self.record = record
        self.status = status
        self.reserved = reserved
        self.load = load
        self.tasks = tasks
        self.serviceTasks = serviceTasks
    }

    public var id: String { record.id }
}

/// The nodes at one moment; the scheduler reads it and records its placements in it.
public struct ClusterSnapshot: Sendable {
    public var nodes: [SchedulerNode]
    public init(nodes: [SchedulerNode]) { self.nodes = nodes }
}

/// A task to place: what the filters and the score need of it.
public struct SchedulingRequest: Sendable {
    public var taskID: String
    public var serviceID: String
    /// Tasks of one service and version share their requirements: the scheduler filters once per group.
    public var group: String
    public var reservations: Resources
    public var constraints: [Constraint]
    public var platforms: [PlatformSpec]
    /// Fixed host ports the task publishes: a node holds each once.
    public var hostPorts: [String]
    /// Node attributes whose values the service's tasks spread over, in order.
    public var spread: [Constraint.Key]
    /// Tasks of the service one node takes at most; 0: no limit.
    public var maxPerNode: Int
    /// Host device paths the task needs: only a node that reports each one takes it.
    public var devices: [String]
    /// The task is on cluster networks of its own (`--network`): only a node
    /// in the overlay (`NodeRecord.underlayHost`) can attach it.
    public var needsOverlay: Bool

    public init(taskID: String, serviceID: String, group: String, reservations: Resources,
                constraints: [Constraint], platforms: [PlatformSpec], hostPorts: [String] = [],
                spread: [Constraint.Key] = [], maxPerNode: Int = 0, devices: [String] = [], needsOverlay: Bool = false) {
        self.devices = devices
        self.needsOverlay = needsOverlay
        self.hostPorts = hostPorts
        self.spread = spread
        self.maxPerNode = maxPerNode
        self.taskID = taskID
        self.serviceID = serviceID
        self.group = group
        self.reservations = reservations
        self.constraints = constraints
        self.platforms = platforms
    }

    /// Requests for tasks, their requirements parsed once per service version.
    public static func requests(for tasks: [TaskRecord]) -> [SchedulingRequest] {
        var parsed: [String: SchedulingRequest] = [:]
        return tasks.map { t in
            let group = "\(t.serviceID)@\(t.version)"
            var r = parsed[group] ?? {
                let v = SchedulingRequest(task: t)
                parsed[group] = v
                return v
            }()
            r.taskID = t.id
            return r
        }
    }

    /// The requirements of a task at its spec (constraints and preferences were validated when the spec was accepted).
    public init(task: TaskRecord) {
        let spec = task.spec
        self.init(taskID: task.id, serviceID: task.serviceID, group: "\(task.serviceID)@\(task.version)",
                  reservations: spec.reservations,
                  constraints: spec.constraints.compactMap { try? Constraint(parsing: $0) },
                  platforms: spec.platforms.compactMap { try? PlatformSpec(parsing: $0) }, hostPorts: spec.hostPorts,
                  spread: spec.placementPreferences.compactMap { try? PlacementPreference(parsing: $0).spread },
                  maxPerNode: spec.maxReplicasPerNode, devices: spec.container.devices.map(\.host),
                  needsOverlay: !spec.networks.isEmpty)
    }
}

/// How much each part of the score counts. Lower scores win.
public struct SchedulerWeights: Sendable, Equatable {
    /// Per task of the same service already on the node (spread).
    public var spread: Double
    /// Per unit of CPU busy (observed) or reserved, whichever is higher (0…1).
    public var cpu: Double
    /// Per unit of memory in use or reserved (0…1).
    public var memory: Double
    /// Per task of any service on the node.
    public var tasks: Double

    public init(spread: Double = 1, cpu: Double = 2, memory: Double = 2, tasks: Double = 0.1) {
        self.spread = spread
        self.cpu = cpu
        self.memory = memory
        self.tasks = tasks
    }
}

/// What a node's score was made of when a task was placed on it.
public struct ScoreBreakdown: Sendable, Equatable {
    public var total: Double
    /// CPU busy or reserved, whichever was higher (0…1).
    public var cpu: Double
    /// Memory in use or reserved (0…1).
    public var memory: Double
    /// Tasks of the same service already there, and of any service.
    public var serviceTasks: Int
    public var tasks: Int
}

/// The scheduler's answer for one task.
public struct Placement: Sendable, Equatable {
    public var taskID: String
    /// nil: not placed; `reason` says why.
    public var nodeID: String?
    public var reason: String
    /// Placed: the chosen node's score, and the best node passed over (if any).
    public var score: ScoreBreakdown? = nil
    public var nextNode: String? = nil
    public var nextScore: Double? = nil
}

/// A pure pipeline over a snapshot: filters (ready, active, platform,
/// constraints, resources), then a score from the node's load and the spread
/// of the service's tasks; ties go to injected randomness, so a seeded
/// generator makes every decision repeatable.
public struct Scheduler: Sendable {
    public var weights: SchedulerWeights

    public init(weights: SchedulerWeights = SchedulerWeights()) { self.weights = weights }

    /// Places `requests` in order, recording each placement in `snapshot`.
    public func schedule<R: RandomNumberGenerator>(_ requests: [SchedulingRequest], on snapshot: inout ClusterSnapshot,
                                                   using rng: inout R) -> [Placement] {
        var out: [Placement] = []
        out.reserveCapacity(requests.count)
        var i = 0
        while i < requests.count {
            var j = i + 1
            while j < requests.count && requests[j].group == requests[i].group { j += 1 }
            placeGroup(requests[i..<j], on: &snapshot, using: &rng, into: &out)
            i = j
        }
        return out
    }

    /// Tasks of one group: the static filters once, then a heap of candidate
    /// nodes by score; only the node just chosen changes its score.
    func placeGroup<R: RandomNumberGenerator>(_ group: ArraySlice<SchedulingRequest>, on snapshot: inout ClusterSnapshot,
                                              using rng: inout R, into out: inout [Placement]) {
        guard let first = group.first else { return }
        if !first.spread.isEmpty { return placeSpread(group, on: &snapshot, using: &rng, into: &out) }
        var heap = NodeHeap()
        heap.reserve(snapshot.nodes.count)
        for idx in snapshot.nodes.indices where Scheduler.passesStatic(snapshot.nodes[idx], first) {
            if Scheduler.fits(snapshot.nodes[idx], first) != nil { continue }
            heap.push(.init(score: score(snapshot.nodes[idx], service: first.serviceID), tie: rng.next(), node: Int32(idx)))
        }
        var reason: String?
        for request in group {
            var chosen: Int?
            while let top = heap.pop() {
                let idx = Int(top.node)
                if Scheduler.fits(snapshot.nodes[idx], request) == nil {
                    chosen = idx
                    let next = heap.first
                    var p = Placement(taskID: request.taskID, nodeID: snapshot.nodes[idx].id, reason: "",
                                      score: breakdown(snapshot.nodes[idx], service: request.serviceID))
                    if let next {
                        p.nextNode = snapshot.nodes[Int(next.node)].id
                        p.nextScore = next.score
                    }
                    out.append(p)
                    place(request, on: &snapshot.nodes[idx])
                    heap.push(.init(score: score(snapshot.nodes[idx], service: request.serviceID), tie: top.tie, node: top.node))
                    break
                }
            }
            if chosen == nil {
                if reason == nil { reason = explain(request, in: snapshot) }
                out.append(Placement(taskID: request.taskID, nodeID: nil, reason: reason ?? ""))
            }
        }
    }

    /// Tasks of a group with placement preferences: each goes to the value of
    /// the first attribute with the fewest of the service's tasks on its
    /// eligible nodes, within it to the value of the next attribute with the
    /// fewest, and so on; among the nodes left, to the best score. Nodes
    /// without the attribute count as one value of their own, as Swarm's.
    func placeSpread<R: RandomNumberGenerator>(_ group: ArraySlice<SchedulingRequest>, on snapshot: inout ClusterSnapshot,
                                               using rng: inout R, into out: inout [Placement]) {
        guard let first = group.first else { return }
        var candidates = snapshot.nodes.indices.filter { Scheduler.passesStatic(snapshot.nodes[$0], first) }.map { idx in
            SpreadCandidate(node: idx, path: first.spread.map { $0.value(of: snapshot.nodes[idx].record) }, tie: rng.next())
        }
        // The service's tasks under each prefix of values (level, values so far).
        var counts: [[String?]: Int] = [:]
        for c in candidates {
            let k = snapshot.nodes[c.node].serviceTasks[first.serviceID] ?? 0
            for level in 1...c.path.count { counts[Array(c.path.prefix(level)), default: 0] += k }
        }
        var reason: String?
        for request in group {
            candidates.removeAll { Scheduler.fits(snapshot.nodes[$0.node], request) != nil }
            var best: (key: [Double], tie: UInt64, at: Int)?
            for (i, c) in candidates.enumerated() {
                var key = (1...max(1, c.path.count)).map { Double(counts[Array(c.path.prefix($0))] ?? 0) }
                key.append(score(snapshot.nodes[c.node], service: request.serviceID))
                if let b = best, !(key.lexicographicallyPrecedes(b.key) || (key == b.key && c.tie < b.tie)) { continue }
                best = (key, c.tie, i)
            }
            guard let b = best else {
                if reason == nil { reason = explain(request, in: snapshot) }
                out.append(Placement(taskID: request.taskID, nodeID: nil, reason: reason ?? ""))
                continue
            }
            let c = candidates[b.at]
            out.append(Placement(taskID: request.taskID, nodeID: snapshot.nodes[c.node].id, reason: "",
                                 score: breakdown(snapshot.nodes[c.node], service: request.serviceID)))
            place(request, on: &snapshot.nodes[c.node])
            for level in 1...c.path.count { counts[Array(c.path.prefix(level)), default: 0] += 1 }
        }
    }

    func place(_ r: SchedulingRequest, on n: inout SchedulerNode) {
        n.reserved.cpuMillis += r.reservations.cpuMillis
        n.reserved.memory += r.reservations.memory
        n.tasks += 1
        n.serviceTasks[r.serviceID, default: 0] += 1
        n.hostPorts.formUnion(r.hostPorts)
    }

    /// The node's score for one more task of `service`: lower is better.
    public func score(_ n: SchedulerNode, service: String) -> Double { breakdown(n, service: service).total }

    /// The score and its parts.
    public func breakdown(_ n: SchedulerNode, service: String) -> ScoreBreakdown {
        let cap = n.record.capacity
        let cpuReserved = cap.cpuMillis > 0 ? Double(n.reserved.cpuMillis) / Double(cap.cpuMillis) : 0
        let memReserved = cap.memory > 0 ? Double(n.reserved.memory) / Double(cap.memory) : 0
        let cpu = max(min(1, max(0, n.load.cpu)), cpuReserved)
        let mem = max(n.load.memoryUsed, memReserved)
        let same = n.serviceTasks[service] ?? 0
        let total = weights.spread * Double(same) + weights.tasks * Double(n.tasks) + weights.cpu * cpu + weights.memory * mem
        return ScoreBreakdown(total: total, cpu: cpu, memory: mem, serviceTasks: same, tasks: n.tasks)
    }

    // MARK: filters

    /// Why a node cannot take a task, in pipeline order; nil: it can.
    public enum Rejection: Hashable, Sendable {
        case notReady(NodeStatus)
        /// Paused or draining.
        case unavailable(NodeAvailability)
        case platform
        case constraint(String)
        case memory
        case cpu
        case port(String)
        /// The service's tasks on the node reached `--max-replicas-per-node`.
        case maxReplicas(Int)
        /// The node does not report a device the task needs.
        case device(String)
        /// The task is on cluster networks and the node is outside the overlay.
        case outsideOverlay
    }

    static func passesStatic(_ n: SchedulerNode, _ r: SchedulingRequest) -> Bool {
        staticRejection(n, r) == nil
    }

    static func staticRejection(_ n: SchedulerNode, _ r: SchedulingRequest) -> Rejection? {
        if n.status != .ready { return .notReady(n.status) }
        if n.record.availability != .active { return .unavailable(n.record.availability) }
        if !r.platforms.isEmpty && !r.platforms.contains(where: { n.record.platform.runs($0) }) { return .platform }
        for c in r.constraints where !c.matches(n.record) { return .constraint(c.text) }
        for d in r.devices where !n.record.has(device: d) { return .device(d) }
        if r.needsOverlay && n.record.underlayHost == nil { return .outsideOverlay }
        return nil
    }

    /// Whether the node's unreserved capacity holds the task's reservations (a
    /// zero reservation always fits) and its fixed host ports are free there.
    static func fits(_ n: SchedulerNode, _ r: SchedulingRequest) -> Rejection? {
        for p in r.hostPorts where n.hostPorts.contains(p) { return .port(p) }
        if r.maxPerNode > 0 && (n.serviceTasks[r.serviceID] ?? 0) >= r.maxPerNode { return .maxReplicas(r.maxPerNode) }
        let want = r.reservations
        let cap = n.record.capacity
        if want.memory > 0 && cap.memory - n.reserved.memory < want.memory { return .memory }
        if want.cpuMillis > 0 && cap.cpuMillis - n.reserved.cpuMillis < want.cpuMillis { return .cpu }
        return nil
    }

    public func rejection(_ n: SchedulerNode, _ r: SchedulingRequest) -> Rejection? {
        Scheduler.staticRejection(n, r) ?? Scheduler.fits(n, r)
    }

    /// Why no node takes the task: each node counted once, under the first
    /// filter that refuses it ("insufficient memory on 3 nodes, constraint
    /// node.labels.zone==a excludes 2 nodes").
    public func explain(_ r: SchedulingRequest, in snapshot: ClusterSnapshot) -> String {
        if snapshot.nodes.isEmpty { return "no nodes in the cluster" }
        var counts: [Rejection: Int] = [:]
        var order: [Rejection] = []
        for n in snapshot.nodes {
            guard let why = rejection(n, r) else { continue }
            if counts[why] == nil { order.append(why) }
            counts[why, default: 0] += 1
        }
        if order.isEmpty { return "" }
        func nodes(_ k: Int) -> String { k == 1 ? "1 node" : "\(k) nodes" }
        let rank: (Rejection) -> Int = {
            switch $0 {
            case .notReady: return 0
            case .unavailable: return 1
            case .platform: return 2
            case .constraint: return 3
            case .memory: return 4
            case .cpu: return 5
            case .port: return 6
            case .maxReplicas: return 7
            case .device: return 8
            case .outsideOverlay: return 9
            }
        }
        let parts = order.sorted { rank($0) < rank($1) }.map { why -> String in
            let k = counts[why] ?? 0
            switch why {
            case .notReady(let s): return "\(nodes(k)) \(s == .unknown ? "not connected" : s.rawValue)"
            case .unavailable(let a): return "\(nodes(k)) \(a == .pause ? "paused" : "draining")"
            case .platform: return "platform \(r.platforms.map(\.description).joined(separator: ",")) excludes \(nodes(k))"
            case .constraint(let c): return "constraint \(c) excludes \(nodes(k))"
            case .memory: return "insufficient memory on \(nodes(k))"
            case .cpu: return "insufficient CPU on \(nodes(k))"
            case .maxReplicas(let m): return "max replicas per node (\(m)) reached on \(nodes(k))"
            case .device(let d): return "device \(d) missing on \(nodes(k))"
            case .outsideOverlay: return "cluster networks unreachable from \(nodes(k)) outside the overlay (connected over loopback or opted out)"
            case .port(let p): return "host port \(p.split(separator: "/").last ?? "")/\(p.split(separator: "/").first ?? "") in use on \(nodes(k))"
            }
        }
        return "no suitable node (" + parts.joined(separator: ", ") + ")"
    }
}

/// A node that may take a task of a group with placement preferences.
struct SpreadCandidate {
    var node: Int
    /// The node's value of each preference's attribute; nil: a label it lacks.
    var path: [String?]
    var tie: UInt64
}

/// A binary min-heap of candidate nodes by (score, tie-break).
struct NodeHeap {
    struct Entry {
        var score: Double
        var tie: UInt64
        var node: Int32

        static func < (a: Entry, b: Entry) -> Bool {
            a.score != b.score ? a.score < b.score : a.tie < b.tie
        }
    }

    private var items: [Entry] = []

    mutating func reserve(_ n: Int) { items.reserveCapacity(n) }
    var isEmpty: Bool { items.isEmpty }
    /// The best entry, left in place.
    var first: Entry? { items.first }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard items[i] < items[p] else { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && items[l] < items[m] { m = l }
                if r < n && items[r] < items[m] { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
