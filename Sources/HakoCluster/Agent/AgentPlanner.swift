/// What the agent does to make its node hold exactly its assignment.
public enum AgentAction: Sendable, Equatable {
    /// Create and start the task's container.
    case start(Assignment)
    /// Start a container created before the agent died.
    case startExisting(taskID: String, containerID: String)
    /// Stop (and keep, for its logs) a task no longer wanted running.
    case stop(taskID: String, containerID: String, timeout: Int?)
    /// Stop and delete a container no task of this node claims.
    case remove(taskID: String, containerID: String)

    public var key: String {
        switch self {
        case .start(let a): return a.taskID
        case .startExisting(let t, _), .stop(let t, _, _), .remove(let t, _): return t
        }
    }
}

/// Pure: assignment + what the node runs → actions and the tasks' observed
/// states. Running containers are adopted as they are (an agent restart
/// restarts nothing); containers of tasks not assigned here are removed.
public enum AgentPlanner {
    public static func plan(assignments: [Assignment], observed: [ObservedTask], busy: Set<String>) -> (actions: [AgentAction], statuses: [TaskStatus]) {
        var byTask: [String: [ObservedTask]] = [:]
        var seen = Set<String>()
        for o in observed.sorted(by: { rank($0) < rank($1) }) where seen.insert(o.containerID).inserted {
            byTask[o.taskID, default: []].append(o)
        }
        var actions: [AgentAction] = []
        var statuses: [TaskStatus] = []
        var assigned = Set<String>()
        for a in assignments {
            assigned.insert(a.taskID)
            var containers = byTask[a.taskID] ?? []
            // Two containers for one task (a crash between create and record): keep the most alive.
            if containers.count > 1 {
                containers.sort { rank($0) < rank($1) }
                for extra in containers.dropFirst() where !busy.contains(a.taskID) {
                    actions.append(.remove(taskID: a.taskID, containerID: extra.containerID))
                }
            }
            let c = containers.first
            if let s = status(a, c) { statuses.append(s) }
            guard !busy.contains(a.taskID) else { continue }
            switch (a.desired, c?.status) {
            case (.running, nil):
                if [.pending, .assigned, .starting].contains(a.state) { actions.append(.start(a)) }
            case (.running, .created?):
                if let c { actions.append(.startExisting(taskID: a.taskID, containerID: c.containerID)) }
            case (.running, .running?) where c?.health == AgentPlanner.unhealthy:
                // Swarm's rule: an unhealthy task has failed; it is stopped and replaced (status says so).
                if let c { actions.append(.stop(taskID: a.taskID, containerID: c.containerID, timeout: a.spec.stopTimeout)) }
            case (.shutdown, .created?), (.shutdown, .running?), (.shutdown, .restarting?):
                // An orphaned task was replaced while its node was cut off: a
                // duplicate of a running task, killed without the stop grace.
                if let c { actions.append(.stop(taskID: a.taskID, containerID: c.containerID, timeout: a.state == .orphaned ? 0 : a.spec.stopTimeout)) }
            default: break
            }
        }
        for (task, cs) in byTask where !assigned.contains(task) && !busy.contains(task) {
            for c in cs { actions.append(.remove(taskID: task, containerID: c.containerID)) }
        }
        return (actions, statuses)
    }

    static func rank(_ o: ObservedTask) -> Int {
        switch o.status {
        case .running: return 0
        case .restarting: return 1
        case .created: return 2
        case .exited: return 3
        case .dead: return 4
        }
    }

    static let unhealthy = "unhealthy"

    /// The task's state as its container shows it; nil when there is nothing to say yet.
    public static func status(_ a: Assignment, _ c: ObservedTask?) -> TaskStatus? {
        guard let c else {
            if a.desired == .running && a.state == .running {
                return TaskStatus(taskID: a.taskID, state: .failed, message: "the container is gone")
            }
            if a.desired == .shutdown && !a.state.isTerminal {
                return TaskStatus(taskID: a.taskID, state: .shutdown, message: "stopped before it started")
            }
            return nil
        }
        switch c.status {
        case .created:
            return TaskStatus(taskID: a.taskID, state: a.desired == .running ? .starting : .shutdown, containerID: c.containerID)
        case .running where c.health == unhealthy:
            // Failed, also once its replacement is asked for and while it is being stopped:
            // a "running" report would take the failure back.
            return TaskStatus(taskID: a.taskID, state: .failed, containerID: c.containerID, message: "unhealthy container", health: c.health)
        case .running:
            return TaskStatus(taskID: a.taskID, state: .running, containerID: c.containerID,
                              message: c.restartCount > 0 ? "restarted \(c.restartCount) times" : "", ports: c.ports.isEmpty ? nil : c.ports, address: c.address,
                              networkAddresses: c.networkAddresses.isEmpty ? nil : c.networkAddresses, health: c.health)
        case .restarting:
            return TaskStatus(taskID: a.taskID, state: .running, containerID: c.containerID, exitCode: c.exitCode,
                              message: "restarting after exit code \(c.exitCode) (restart \(c.restartCount + 1))")
        case .exited, .dead:
            if a.desired == .shutdown {
                return TaskStatus(taskID: a.taskID, state: .shutdown, containerID: c.containerID, exitCode: c.exitCode)
            }
            if c.status == .exited && c.exitCode == 0 {
                return TaskStatus(taskID: a.taskID, state: .complete, containerID: c.containerID, exitCode: 0, message: "exit code 0")
            }
            if c.health == unhealthy {
                return TaskStatus(taskID: a.taskID, state: .failed, containerID: c.containerID, exitCode: c.exitCode, message: "unhealthy container",
                                  health: c.health)
            }
            return TaskStatus(taskID: a.taskID, state: .failed, containerID: c.containerID, exitCode: c.exitCode,
                              message: c.status == .dead ? "the container is dead" : "exit code \(c.exitCode)" + (c.restartCount > 0 ? " after \(c.restartCount) restarts" : ""))
        }
    }
}
