/// What the coordinator counts as it goes (the rest is read off its state at scrape time).
public struct CoordinatorMetrics: Sendable, Equatable {
    public var heartbeats: UInt64 = 0
    /// From a task becoming schedulable (created, or its restart delay over) to its placement.
    public var schedulingLatency = Histogram(bounds: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
    public var placements: UInt64 = 0
    public init() {}
}

extension CoordinatorCore {
    /// The coordinator's metric families, from its state and counters.
    public func metricFamilies() -> [MetricFamily] {
        var nodes: [NodeStatus: Int] = [:]
        for id in state.nodes.keys { nodes[dispatcher.status(id), default: 0] += 1 }
        var tasks: [TaskState: Int] = [:]
        for t in state.tasks.values { tasks[t.state, default: 0] += 1 }
        let nodeStates: [NodeStatus] = [.unknown, .ready, .suspect, .down]
        return [
            .byLabel("hako_cluster_nodes", .gauge, help: "Nodes by status.", label: "state",
                     nodeStates.map { ($0.rawValue, Double(nodes[$0] ?? 0)) }),
            .byLabel("hako_cluster_tasks", .gauge, help: "Tasks (current and kept history) by state.", label: "state",
                     TaskState.allCases.map { ($0.rawValue, Double(tasks[$0] ?? 0)) }),
            MetricFamily("hako_cluster_services", .gauge, help: "Services.", samples: [.init(value: Double(state.services.count))]),
            MetricFamily("hako_cluster_heartbeats_received_total", .counter, help: "Heartbeats received from agents.",
                         samples: [.init(value: Double(metrics.heartbeats))]),
            MetricFamily("hako_cluster_placements_total", .counter, help: "Tasks placed on a node by the scheduler.",
                         samples: [.init(value: Double(metrics.placements))]),
            metrics.schedulingLatency.family("hako_cluster_scheduling_latency_seconds",
                                             help: "Time from a task becoming schedulable to its placement on a node."),
            MetricFamily("hako_cluster_events_buffered", .gauge, help: "Events kept for `hako cluster events`.",
                         samples: [.init(value: Double(events.count))]),
        ]
    }

    /// Called when the scheduler places a task.
    func countPlacement(_ t: TaskRecord, at wall: Double) {
        metrics.placements += 1
        metrics.schedulingLatency.observe(max(0, wall - max(t.created, t.notBefore)))
    }
}
