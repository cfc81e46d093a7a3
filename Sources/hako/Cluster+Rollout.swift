import HakoCLI
import HakoCluster
import HakoSystem

/// `--update-*` and `--rollback-*` (Swarm's): how an update replaces the
/// tasks, and how a rollback does. On `update`, only the flags given change.
struct RolloutFlags: ParsableArguments {
    @Option(name: .long("update-parallelism"), help: "Tasks updated at a time (0: all at once) (default 1).") var updateParallelism: Int?
    @Option(name: .long("update-delay"), help: "Delay between batches of updates (ns|us|ms|s|m|h) (default 0s).") var updateDelay: String?
    @Option(name: .long("update-order"), help: "Update order: start-first or stop-first (default stop-first).") var updateOrder: String?
    @Option(name: .long("update-failure-action"), help: "Action on update failure: pause, continue or rollback (default pause).") var updateFailureAction: String?
    @Option(name: .long("update-monitor"), help: "Time a task without a health check must run to count as updated, and to watch for its failure (default 5s).") var updateMonitor: String?
    @Option(name: .long("update-max-failure-ratio"), help: "Failure rate to tolerate during an update (0 to 1) (default 0).") var updateMaxFailureRatio: Double?
    @Option(name: .long("rollback-parallelism"), help: "Tasks rolled back at a time (0: all at once) (default 1).") var rollbackParallelism: Int?
    @Option(name: .long("rollback-delay"), help: "Delay between batches of rollbacks (ns|us|ms|s|m|h) (default 0s).") var rollbackDelay: String?
    @Option(name: .long("rollback-order"), help: "Rollback order: start-first or stop-first (default stop-first).") var rollbackOrder: String?
    @Option(name: .long("rollback-failure-action"), help: "Action on rollback failure: pause or continue (default pause).") var rollbackFailureAction: String?
    @Option(name: .long("rollback-monitor"), help: "Time to watch each rolled back task for failure (default 5s).") var rollbackMonitor: String?
    @Option(name: .long("rollback-max-failure-ratio"), help: "Failure rate to tolerate during a rollback (0 to 1) (default 0).") var rollbackMaxFailureRatio: Double?

    func apply(to spec: inout ServiceSpec) throws {
        try apply("update", &spec.update, parallelism: updateParallelism, delay: updateDelay, order: updateOrder,
                  failureAction: updateFailureAction, monitor: updateMonitor, ratio: updateMaxFailureRatio)
        try apply("rollback", &spec.rollback, parallelism: rollbackParallelism, delay: rollbackDelay, order: rollbackOrder,
                  failureAction: rollbackFailureAction, monitor: rollbackMonitor, ratio: rollbackMaxFailureRatio)
    }

    private func apply(_ what: String, _ c: inout UpdateConfig, parallelism: Int?, delay: String?, order: String?, failureAction: String?,
                       monitor: String?, ratio: Double?) throws {
        func seconds(_ v: String, _ flag: String) throws -> Double {
            guard let d = Durations.parse(v), d >= 0 else { throw HakoError(.failed, "invalid argument \"\(v)\" for \"--\(what)-\(flag)\" flag: a duration such as 10s or 1m30s") }
            return d
        }
        if let p = parallelism { c.parallelism = p }
        if let d = delay { c.delay = try seconds(d, "delay") }
        if let o = order {
            guard let v = UpdateConfig.Order(rawValue: o) else { throw HakoError(.failed, "invalid --\(what)-order \"\(o)\": start-first or stop-first") }
            c.order = v
        }
        if let a = failureAction {
            guard let v = UpdateConfig.FailureAction(rawValue: a), what == "update" || v != .rollback else {
                throw HakoError(.failed, "invalid --\(what)-failure-action \"\(a)\": \(what == "update" ? "pause, continue or rollback" : "pause or continue")")
            }
            c.failureAction = v
        }
        if let m = monitor { c.monitor = try seconds(m, "monitor") }
        if let r = ratio { c.maxFailureRatio = r }
    }
}

struct ServiceRollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Revert a service to its previous spec, its tasks replaced with the rollback config.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: .long("wait"), help: "Wait until every task runs the restored version.") var wait = false
    @Option(name: .long("timeout"), help: "Bound for --wait (default 5m).") var timeout = "5m"
    @Argument(help: "SERVICE") var service: String

    func run() throws {
        try clusterCommand {
            guard let bound = Durations.parse(timeout) else { throw HakoError(.failed, "invalid --timeout \"\(timeout)\"") }
            try rollbackService(service, client: try options.client(), waitingUpTo: wait ? bound : nil)
        }
    }
}

/// `service rollback` and `service update --rollback`: the previous spec
/// restored, then (with --wait) its tasks converged; prints the name.
func rollbackService(_ service: String, client: ClusterClient, waitingUpTo bound: Double?) throws {
    let v = try client.request(MessageType.serviceRollback, ServiceRef(service: service), as: ServiceView.self)
    if let bound { try waitConverged(client, service: v.id, timeout: bound) }
    print(v.name)
}
