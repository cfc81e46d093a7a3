/// One node's session and liveness: in memory only (heartbeats never reach the store).
public struct NodeLiveness: Sendable {
    public var status: NodeStatus
    /// Monotonic time of the last sign of life (hello or heartbeat).
    public var lastSeen: Double
    /// When the next sign of life is due (the last one plus the interval the
    /// node was told): until then the node is not missing anything.
    public var due: Double
    public var session: String?
    public var connection: Int?
    public var load: NodeLoad?
    /// Task states from the last heartbeat.
    public var reported: [String: TaskState] = [:]
}

/// Sessions and heartbeats: the coordinator picks each heartbeat's period
/// (period ± jitter, from injected randomness) and tells the agent; a node
/// that misses `suspectAfterMissed` beats is suspect (no new tasks). A node
/// is down once it has been unreachable for the grace period, counted from
/// when its next heartbeat was due (or from its session's close, if that was
/// earlier) — not from its last beat, which can precede an outage by a whole
/// period: with a 1 s period and a 3 s grace, counting from the last beat
/// would make a 2 s blip cost the node its tasks. A blip shorter than the
/// grace period never moves a task. Pure: time comes in as arguments.
public struct Dispatcher: Sendable {
    public var period: Double
    public var jitter: Double
    public var suspectAfterMissed: Int
    public var grace: Double
    public private(set) var nodes: [String: NodeLiveness] = [:]

    public init(period: Double, jitter: Double, suspectAfterMissed: Int, grace: Double) {
        self.period = period
        self.jitter = jitter
        self.suspectAfterMissed = suspectAfterMissed
        self.grace = grace
    }

    /// Silence after which a ready node is suspect.
    public var suspectAfter: Double { period * Double(suspectAfterMissed) + jitter }

    /// A node known from the store: unknown until it says hello; down after
    /// the grace period counted from `now` plus `allowance` (after a
    /// coordinator restart every node gets time to reconnect first).
    public mutating func track(_ node: String, now: Double, allowance: Double = 0) {
        if nodes[node] == nil { nodes[node] = NodeLiveness(status: .unknown, lastSeen: now + allowance, due: now + allowance) }
    }

    public mutating func forget(_ node: String) { nodes[node] = nil }

    public func status(_ node: String) -> NodeStatus { nodes[node]?.status ?? .unknown }

    /// The next heartbeat interval.
    public func nextInterval<R: RandomNumberGenerator>(using rng: inout R) -> Double {
        guard jitter > 0 else { return period }
        return period + Double.random(in: -jitter...jitter, using: &rng)
    }

    /// A session opened (hello): the node is ready; its first heartbeat is
    /// due `interval` from now. Returns the previous status.
    @discardableResult
    public mutating func open(_ node: String, session: String, connection: Int, load: NodeLoad, now: Double, interval: Double) -> NodeStatus {
        let before = status(node)
        nodes[node] = NodeLiveness(status: .ready, lastSeen: now, due: now + interval, session: session, connection: connection, load: load)
        return before
    }

    /// A heartbeat of the current session, the next one due `interval` from
    /// now; nil when the session is not current.
    public mutating func beat(_ node: String, session: String, load: NodeLoad, tasks: [String: TaskState], now: Double, interval: Double) -> NodeStatus? {
        guard var l = nodes[node], l.session == session else { return nil }
        let before = l.status
        l.lastSeen = now
        l.due = now + interval
        l.status = .ready
        l.load = load
        l.reported = tasks
        nodes[node] = l
        return before
    }

    /// The session's connection closed at `now`: the node is unreachable from
    /// then (if its next beat was due later), and stays as it is until that
    /// passes the thresholds (a quick reconnect moves nothing).
    public mutating func close(_ node: String, connection: Int, now: Double) {
        guard var l = nodes[node], l.connection == connection else { return }
        l.connection = nil
        l.session = nil
        l.due = min(l.due, now)
        nodes[node] = l
    }

    public func isCurrent(_ node: String, session: String) -> Bool { nodes[node]?.session == session }

    /// Status changes due by `now`: (node, from, to).
    public mutating func evaluate(now: Double) -> [(node: String, from: NodeStatus, to: NodeStatus)] {
        var out: [(String, NodeStatus, NodeStatus)] = []
        for (id, l) in nodes {
            let silent = now - l.lastSeen
            var next = l.status
            if now - l.due > grace {
                next = .down
            } else if l.status == .ready && (silent > suspectAfter || l.session == nil) {
                next = .suspect
            }
            if next != l.status {
                nodes[id]?.status = next
                out.append((id, l.status, next))
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }
}
