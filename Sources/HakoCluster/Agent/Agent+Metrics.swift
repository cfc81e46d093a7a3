extension Agent {
    /// Serves the node's metrics on `metrics_listen` (nothing when unset).
    func startMetrics() throws(ClusterError) {
        guard let ep = config.metricsListen else { return }
        metricsServer = try MetricsServer(listen: ep, loop: loop, log: log) { [unowned self] done in
            let (observed, running, assigned, connected) = (self.observed, self.runningContainers, self.assignments.count, self.session != nil)
            let source = self.runtime as? any ContainerUsageSource
            let loop = self.loop
            let finish = SendableBox(done)
            let node = NodeResources.host(dataRoot: self.config.root)
            self.workers.submit(key: "metrics") {
                let usage = (try? source?.usage()) ?? []
                let snap = AgentMetricsSnapshot(observed: observed, runningContainers: running, assigned: assigned, connected: connected,
                                                usage: usage, node: node.families())
                loop.post { finish.value(snap.families()) }
            }
        }
        log.info("metrics on http://\(Endpoint(host: ep.host, port: metricsServer?.port ?? ep.port))/metrics")
    }
}

/// Carries a loop-confined closure across a worker and back to the loop.
final class SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}
