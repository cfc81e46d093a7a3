import HakoSystem

/// A container's health check, as Docker's image config (`Healthcheck`), its
/// HEALTHCHECK instruction and its `--health-*` flags describe it. Durations
/// of zero and retries of zero mean "not set": inherited from the image when
/// a container's check is merged over it, Docker's default when it runs.
public struct HealthCheck: Sendable, Equatable {
    public enum Test: Sendable, Equatable {
        /// No test given: the image's (JSON: `[]`).
        case inherit
        /// Checks disabled (`["NONE"]`, `--no-healthcheck`, `HEALTHCHECK NONE`).
        case none
        /// The program and its arguments, run as they are (`["CMD", …]`).
        case exec([String])
        /// A command line run by `/bin/sh -c` (`["CMD-SHELL", "…"]`).
        case shell(String)
    }

    public var test: Test
    public var interval: Duration
    public var timeout: Duration
    public var startPeriod: Duration
    public var startInterval: Duration
    public var retries: Int

    /// Docker's defaults for what is not set.
    public static let defaultInterval = Duration.seconds(30)
    public static let defaultTimeout = Duration.seconds(30)
    public static let defaultStartInterval = Duration.seconds(5)
    public static let defaultRetries = 3
    /// Docker refuses anything shorter (but zero, "not set").
    public static let minimumDuration = Duration.milliseconds(1)

    public init(test: Test, interval: Duration = .zero, timeout: Duration = .zero, startPeriod: Duration = .zero,
                startInterval: Duration = .zero, retries: Int = 0) {
        self.test = test
        self.interval = interval
        self.timeout = timeout
        self.startPeriod = startPeriod
        self.startInterval = startInterval
        self.retries = retries
    }

    /// Docker's merge of a container's check over its image's: the image's
    /// test when none is given, and its durations and retries where the
    /// container's are zero.
    public func merged(over image: HealthCheck?) -> HealthCheck {
        guard let image else { return self }
        var m = self
        if case .inherit = m.test { m.test = image.test }
        if m.interval == .zero { m.interval = image.interval }
        if m.timeout == .zero { m.timeout = image.timeout }
        if m.startPeriod == .zero { m.startPeriod = image.startPeriod }
        if m.startInterval == .zero { m.startInterval = image.startInterval }
        if m.retries == 0 { m.retries = image.retries }
        return m
    }

    /// The program the probe runs; nil when the check is disabled or has no test.
    public var command: [String]? {
        switch test {
        case .inherit, .none: return nil
        case .exec(let argv): return argv.isEmpty ? nil : argv
        case .shell(let line): return ["/bin/sh", "-c", line]
        }
    }

    public var effectiveInterval: Duration { interval == .zero ? Self.defaultInterval : interval }
    public var effectiveTimeout: Duration { timeout == .zero ? Self.defaultTimeout : timeout }
    public var effectiveStartInterval: Duration { startInterval == .zero ? Self.defaultStartInterval : startInterval }
    public var effectiveRetries: Int { retries == 0 ? Self.defaultRetries : retries }

    /// The checks Docker makes of the values: no negative or sub-millisecond durations, no negative retries.
    public func validate() throws(HealthCheckError) {
        for (name, d) in [("interval", interval), ("timeout", timeout), ("start-period", startPeriod), ("start-interval", startInterval)] {
            if d < .zero { throw HealthCheckError("--health-\(name) cannot be negative") }
            if d != .zero && d < Self.minimumDuration { throw HealthCheckError("--health-\(name) cannot be less than 1ms") }
        }
        if retries < 0 { throw HealthCheckError("--health-retries cannot be negative") }
        if case .exec(let argv) = test, argv.isEmpty || argv[0].isEmpty { throw HealthCheckError("a health check needs a command") }
        if case .shell(let line) = test, line.trimmed.isEmpty { throw HealthCheckError("a health check needs a command") }
    }

    // MARK: Docker's JSON form (Test as a list, durations in nanoseconds)

    /// `["CMD", …]`, `["CMD-SHELL", "…"]`, `["NONE"]` or `[]`.
    public var testList: [String] {
        switch test {
        case .inherit: return []
        case .none: return ["NONE"]
        case .exec(let argv): return ["CMD"] + argv
        case .shell(let line): return ["CMD-SHELL", line]
        }
    }

    public static func test(fromList list: [String]) throws(HealthCheckError) -> Test {
        guard let kind = list.first else { return .inherit }
        switch kind {
        case "NONE": return .none
        case "CMD": return .exec(Array(list.dropFirst()))
        case "CMD-SHELL":
            guard list.count == 2 else { throw HealthCheckError("CMD-SHELL takes one command line, found \(list.count - 1)") }
            return .shell(list[1])
        default: throw HealthCheckError("unknown health check test \"\(kind)\" (CMD, CMD-SHELL or NONE)")
        }
    }

    // MARK: Go durations ("1m30s", "500ms"), as Docker's flags and HEALTHCHECK take them
}

public struct HealthCheckError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

extension Duration {
    /// The whole nanoseconds of a duration (saturating at Int64's range).
    public var nanoseconds: Int64 {
        let (s, atto) = components
        let (ns, o1) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if o1 { return s < 0 ? .min : .max }
        let (sum, o2) = ns.addingReportingOverflow(atto / 1_000_000_000)
        return o2 ? (ns < 0 ? .min : .max) : sum
    }

    public var milliseconds: Int64 { nanoseconds / 1_000_000 }
}

extension HealthCheck: Codable {
    enum CodingKeys: String, CodingKey {
        case test = "Test", interval = "Interval", timeout = "Timeout", startPeriod = "StartPeriod"
        case startInterval = "StartInterval", retries = "Retries"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let list = try c.decodeIfPresent([String].self, forKey: .test) ?? []
        do { test = try HealthCheck.test(fromList: list) } catch {
            throw DecodingError.dataCorruptedError(forKey: .test, in: c, debugDescription: error.description)
        }
        func ns(_ k: CodingKeys) throws -> Duration { .nanoseconds(try c.decodeIfPresent(Int64.self, forKey: k) ?? 0) }
        interval = try ns(.interval)
        timeout = try ns(.timeout)
        startPeriod = try ns(.startPeriod)
        startInterval = try ns(.startInterval)
        retries = try c.decodeIfPresent(Int.self, forKey: .retries) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(testList, forKey: .test)
        if interval != .zero { try c.encode(interval.nanoseconds, forKey: .interval) }
        if timeout != .zero { try c.encode(timeout.nanoseconds, forKey: .timeout) }
        if startPeriod != .zero { try c.encode(startPeriod.nanoseconds, forKey: .startPeriod) }
        if startInterval != .zero { try c.encode(startInterval.nanoseconds, forKey: .startInterval) }
        if retries != 0 { try c.encode(retries, forKey: .retries) }
    }
}
