import HakoSystem

/// Monotonic time in seconds: injected so that the dispatcher and the
/// orchestrator can be driven by tests without sleeping.
public protocol ClusterClock: Sendable {
    /// Seconds on a monotonic clock.
    func monotonic() -> Double
    /// Seconds since 1970 (for records people read).
    func wall() -> Double
}

public struct SystemClusterClock: ClusterClock {
    public init() {}
    public func monotonic() -> Double { monotonicSeconds() }
    public func wall() -> Double { Timestamp.now().secondsSince1970 }
}
