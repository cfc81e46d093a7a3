import HakoCLI
import HakoImage
import HakoSystem

/// `--health-*` and `--no-healthcheck` (`run`, `create`; `cluster service
/// create|update`), parsed here once into a typed check; Docker's spelling,
/// durations in Go's ("30s", "1m30s", "500ms").
struct HealthFlags: ParsableArguments {
    @Option(name: .long("health-cmd"), help: "Command to run to check health (run by /bin/sh -c).") var cmd: String?
    @Option(name: .long("health-interval"), help: "Time between running the check (ms|s|m|h) (default 30s).") var interval: String?
    @Option(name: .long("health-timeout"), help: "Maximum time to allow one check to run (ms|s|m|h) (default 30s).") var timeout: String?
    @Option(name: .long("health-retries"), help: "Consecutive failures needed to report unhealthy (default 3).") var retries: Int?
    @Option(name: .long("health-start-period"), help: "Start period for the container to initialize before failures count (ms|s|m|h) (default 0s).") var startPeriod: String?
    @Option(name: .long("health-start-interval"), help: "Time between running the check during the start period (ms|s|m|h) (default 5s).") var startInterval: String?
    @Flag(name: .long("no-healthcheck"), help: "Disable any container-specified HEALTHCHECK.") var noHealthcheck = false

    /// nil when no flag is given (the image's check applies as it is).
    func healthCheck() throws -> HealthCheck? {
        let any = cmd != nil || interval != nil || timeout != nil || retries != nil || startPeriod != nil || startInterval != nil
        if noHealthcheck {
            if any { throw HakoError(.failed, "--no-healthcheck conflicts with --health-* options") }
            return HealthCheck(test: .none)
        }
        guard any else { return nil }
        func duration(_ v: String?, _ flag: String) throws -> Duration {
            guard let v else { return .zero }
            guard let d = GoDuration.parse(v) else {
                throw HakoError(.failed, "invalid argument \"\(v)\" for \"--\(flag)\" flag: a duration such as 30s, 1m30s or 500ms")
            }
            return d
        }
        var check = HealthCheck(test: cmd.map { $0.isEmpty ? .inherit : .shell($0) } ?? .inherit)
        check.interval = try duration(interval, "health-interval")
        check.timeout = try duration(timeout, "health-timeout")
        check.startPeriod = try duration(startPeriod, "health-start-period")
        check.startInterval = try duration(startInterval, "health-start-interval")
        check.retries = retries ?? 0
        do { try check.validate() } catch { throw HakoError(.failed, error.description) }
        return check
    }
}
