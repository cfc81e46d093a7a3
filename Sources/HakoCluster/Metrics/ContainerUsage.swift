import HakoEngine

/// One running container's usage, for the agent's metrics.
public struct ContainerUsage: Sendable, Equatable {
    public var containerID: String
    public var name: String
    /// The cluster task it runs; "" for a container started by hand.
    public var taskID: String
    public var cpuSeconds: Double?
    public var memoryBytes: Double?
    /// Bytes through the container's network interfaces (nil: it has none of its own).
    public var network: (received: Double, transmitted: Double)?
    /// Bytes read from and written to block devices (cgroup io/blkio).
    public var blockRead: Double?
    public var blockWritten: Double?

    public init(containerID: String, name: String, taskID: String, cpuSeconds: Double?, memoryBytes: Double?,
                network: (received: Double, transmitted: Double)? = nil, blockRead: Double? = nil, blockWritten: Double? = nil) {
        self.containerID = containerID
        self.name = name
        self.taskID = taskID
        self.cpuSeconds = cpuSeconds
        self.memoryBytes = memoryBytes
        self.network = network
        self.blockRead = blockRead
        self.blockWritten = blockWritten
    }

    public static func == (a: ContainerUsage, b: ContainerUsage) -> Bool {
        a.containerID == b.containerID && a.name == b.name && a.taskID == b.taskID && a.cpuSeconds == b.cpuSeconds
            && a.memoryBytes == b.memoryBytes && a.network?.received == b.network?.received && a.network?.transmitted == b.network?.transmitted
            && a.blockRead == b.blockRead && a.blockWritten == b.blockWritten
    }
}

/// A runtime that can tell what its running containers use (the engine can; fakes need not).
public protocol ContainerUsageSource: Sendable {
    func usage() throws -> [ContainerUsage]
}

extension EngineTaskRuntime: ContainerUsageSource {
    /// The cgroup counters of every running container on the node.
    public func usage() throws -> [ContainerUsage] {
        try engine.statsSample([]).map { s in
            ContainerUsage(containerID: s.container.id, name: s.container.name,
                           taskID: s.container.config.labels[TaskLabels.task] ?? "",
                           cpuSeconds: s.cgroup.cpuNanos.map { Double($0) / 1e9 },
                           memoryBytes: s.cgroup.memoryUsage.map(Double.init),
                           network: s.net.map { (Double($0.rx), Double($0.tx)) },
                           blockRead: s.cgroup.blockRead.map(Double.init), blockWritten: s.cgroup.blockWrite.map(Double.init))
        }
    }
}

/// What the agent's metrics are built from: its view, taken on the loop thread, and the usage, read on a worker.
public struct AgentMetricsSnapshot: Sendable {
    public var observed: [ObservedTask]
    public var runningContainers: Int
    public var assigned: Int
    public var connected: Bool
    public var usage: [ContainerUsage]
    /// The node's own resources (`NodeResources`), read on the worker too.
    public var node: [MetricFamily]

    public init(observed: [ObservedTask], runningContainers: Int, assigned: Int, connected: Bool, usage: [ContainerUsage], node: [MetricFamily] = []) {
        self.observed = observed
        self.runningContainers = runningContainers
        self.assigned = assigned
        self.connected = connected
        self.usage = usage
        self.node = node
    }

    public func families() -> [MetricFamily] {
        var byStatus: [ObservedTask.Status: Int] = [:]
        for t in observed { byStatus[t.status, default: 0] += 1 }
        let statuses: [ObservedTask.Status] = [.created, .running, .restarting, .exited, .dead]
        let names = Dictionary(usage.map { ($0.containerID, $0.name) }, uniquingKeysWith: { a, _ in a })
        func labels(_ id: String, _ name: String, _ task: String) -> [(String, String)] {
            [("container", String(id.prefix(12))), ("name", name), ("task", task)]
        }
        func each(_ value: (ContainerUsage) -> Double?) -> [MetricFamily.Sample] {
            usage.compactMap { u in value(u).map { .init(labels: labels(u.containerID, u.name, u.taskID), value: $0) } }
        }
        return [
            MetricFamily("hako_build_info", .gauge, help: "The agent's version (the value is always 1).",
                         samples: [.init(labels: [("version", Agent.version)], value: 1)]),
            MetricFamily("hako_agent_connected", .gauge, help: "1 while the agent holds a session with the coordinator.",
                         samples: [.init(value: connected ? 1 : 0)]),
            MetricFamily("hako_agent_tasks_assigned", .gauge, help: "Tasks the coordinator assigned to this node.",
                         samples: [.init(value: Double(assigned))]),
            .byLabel("hako_agent_task_containers", .gauge, help: "Containers of cluster tasks on this node, by status.", label: "state",
                     statuses.map { ($0.rawValue, Double(byStatus[$0] ?? 0)) }),
            MetricFamily("hako_agent_containers_running", .gauge, help: "Containers running on this node (cluster tasks and others).",
                         samples: [.init(value: Double(runningContainers))]),
            MetricFamily("hako_agent_container_restarts_total", .counter, help: "Restarts of each cluster task's container by its restart policy.",
                         samples: observed.sorted { $0.containerID < $1.containerID }.map {
                             .init(labels: labels($0.containerID, names[$0.containerID] ?? "", $0.taskID), value: Double($0.restartCount))
                         }),
            MetricFamily("hako_agent_container_cpu_seconds_total", .counter, help: "CPU time used by each running container.",
                         samples: usage.compactMap { u in u.cpuSeconds.map { .init(labels: labels(u.containerID, u.name, u.taskID), value: $0) } }),
            MetricFamily("hako_agent_container_memory_bytes", .gauge, help: "Memory in use by each running container (without inactive page cache).",
                         samples: usage.compactMap { u in u.memoryBytes.map { .init(labels: labels(u.containerID, u.name, u.taskID), value: $0) } }),
            MetricFamily("hako_agent_container_network_receive_bytes_total", .counter, help: "Bytes received by each running container.",
                         samples: each { $0.network?.received }),
            MetricFamily("hako_agent_container_network_transmit_bytes_total", .counter, help: "Bytes sent by each running container.",
                         samples: each { $0.network?.transmitted }),
            MetricFamily("hako_agent_container_block_read_bytes_total", .counter, help: "Bytes each running container read from block devices.",
                         samples: each(\.blockRead)),
            MetricFamily("hako_agent_container_block_written_bytes_total", .counter, help: "Bytes each running container wrote to block devices.",
                         samples: each(\.blockWritten)),
        ] + node
    }
}
