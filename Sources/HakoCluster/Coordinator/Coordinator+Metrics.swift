extension Coordinator {
    /// Serves the coordinator's metrics on `metrics_listen` (nothing when unset).
    func startMetrics() throws(ClusterError) {
        guard let ep = config.metricsListen else { return }
        metricsServer = try MetricsServer(listen: ep, loop: loop, log: log, health: { "ok\n" }) { [unowned self] done in
            done([BuildInfo.family(role: "coordinator")] + self.core.metricFamilies())
        }
        log.info("metrics on http://\(Endpoint(host: ep.host, port: metricsServer?.port ?? ep.port))/metrics")
    }
}
