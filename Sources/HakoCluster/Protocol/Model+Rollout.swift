import HakoSystem

/// How a service's tasks are replaced by an update or a rollback (Swarm's
/// `UpdateConfig`, with its defaults): `parallelism` units at a time (0: all
/// at once), `delay` between batches, the old task stopped before its
/// successor starts or after it is updated, and what a failing update does.
public struct UpdateConfig: Codable, Sendable, Equatable {
    public enum Order: String, Codable, Sendable {
        /// The old task stops, then its successor starts: never more than the
        /// replicas run, at least replicas − parallelism while the batch lasts.
        case stopFirst = "stop-first"
        /// The successor starts beside the old task, which stops once the new
        /// one counts as updated: at most replicas + parallelism run.
        case startFirst = "start-first"
    }

    public enum FailureAction: String, Codable, Sendable {
        case pause
        case `continue`
        /// The update only: the previous spec comes back.
        case rollback
    }

    /// Units (slots, or a global service's nodes) replaced at a time; 0: all.
    public var parallelism: Int = 1
    /// Seconds between the end of one batch and the start of the next.
    public var delay: Double = 0
    public var order: Order = .stopFirst
    public var failureAction: FailureAction = .pause
    /// Seconds a task without a health check must run to count as updated;
    /// a task that fails before it counts, or this long after, is a failure.
    public var monitor: Double = 5
    /// Failures tolerated, as a fraction of the units the update replaces.
    public var maxFailureRatio: Double = 0

    public init() {}

    enum CodingKeys: String, CodingKey { case parallelism, delay, order, failureAction, monitor, maxFailureRatio }

    /// Every field may be left out and takes Swarm's default.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        parallelism = try c.decodeIfPresent(Int.self, forKey: .parallelism) ?? parallelism
        delay = try c.decodeIfPresent(Double.self, forKey: .delay) ?? delay
        order = try c.decodeIfPresent(Order.self, forKey: .order) ?? order
        failureAction = try c.decodeIfPresent(FailureAction.self, forKey: .failureAction) ?? failureAction
        monitor = try c.decodeIfPresent(Double.self, forKey: .monitor) ?? monitor
        maxFailureRatio = try c.decodeIfPresent(Double.self, forKey: .maxFailureRatio) ?? maxFailureRatio
    }

    /// `what`: "update" or "rollback", for the messages (and a rollback cannot roll back).
    func validate(_ what: String) throws(ClusterError) {
        guard (0...ServiceSpec.maxReplicas).contains(parallelism) else { throw .invalid("\(what) parallelism must be between 0 (all at once) and \(ServiceSpec.maxReplicas)") }
        guard delay >= 0, delay <= 86400 else { throw .invalid("\(what) delay must be between 0 and 24h") }
        guard monitor >= 0, monitor <= 86400 else { throw .invalid("\(what) monitor must be between 0 and 24h") }
        guard maxFailureRatio >= 0, maxFailureRatio <= 1 else { throw .invalid("\(what) max failure ratio must be between 0 and 1") }
        if what == "rollback" && failureAction == .rollback { throw .invalid("the rollback failure action is pause or continue") }
    }
}

/// Where a service's latest update or rollback stands (Swarm's `UpdateStatus`).
public struct UpdateStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case updating, paused, completed
        case rollbackStarted = "rollback_started"
        case rollbackPaused = "rollback_paused"
        case rollbackCompleted = "rollback_completed"

        /// Replacing tasks (neither paused nor done).
        public var isActive: Bool { self == .updating || self == .rollbackStarted }
        public var isRollback: Bool { self == .rollbackStarted || self == .rollbackPaused || self == .rollbackCompleted }
        public var isPaused: Bool { self == .paused || self == .rollbackPaused }
    }

    public var state: State
    public var startedAt: Double
    public var completedAt: Double?
    /// Why it paused, rolled back or ended.
    public var message: String
    /// Tasks of this update counted as failures (each once).
    public var failedTasks: [String] = []
    /// A batch (with a delay configured) is under way.
    public var batchInFlight = false
    /// With a delay: no batch starts before this wall time.
    public var nextBatchAt: Double?

    public init(state: State, startedAt: Double, message: String) {
        self.state = state
        self.startedAt = startedAt
        self.message = message
    }

    enum CodingKeys: String, CodingKey { case state, startedAt, completedAt, message, failedTasks, batchInFlight, nextBatchAt }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        state = try c.decode(State.self, forKey: .state)
        startedAt = try c.decodeIfPresent(Double.self, forKey: .startedAt) ?? 0
        completedAt = try c.decodeIfPresent(Double.self, forKey: .completedAt)
        message = try c.decodeIfPresent(String.self, forKey: .message) ?? ""
        failedTasks = try c.decodeIfPresent([String].self, forKey: .failedTasks) ?? []
        batchInFlight = try c.decodeIfPresent(Bool.self, forKey: .batchInFlight) ?? false
        nextBatchAt = try c.decodeIfPresent(Double.self, forKey: .nextBatchAt)
    }
}

/// The update status as `service inspect` shows it (Docker's field names, RFC 3339 times).
public struct UpdateStatusView: Codable, Sendable, Equatable {
    public var State: String
    public var StartedAt: String
    public var CompletedAt: String?
    public var Message: String

    public init(_ s: UpdateStatus) {
        State = s.state.rawValue
        StartedAt = Timestamp(seconds: Int64(s.startedAt)).rfc3339
        CompletedAt = s.completedAt.map { Timestamp(seconds: Int64($0)).rfc3339 }
        Message = s.message
    }
}
