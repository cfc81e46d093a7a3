/// Swarm's constraint enforcer: a task whose node no longer satisfies the
/// task's constraints (its labels changed) is stopped, and its slot gets a
/// replacement on a node that does.
extension Orchestrator {
    func stopTasksOnIneligibleNodes(_ s: inout ClusterState, now: Double) {
        var parsed: [String: [Constraint]] = [:]
        for (nodeID, ids) in s.tasksByNode {
            guard let node = s.nodes[nodeID] else { continue }
            for id in ids {
                guard let t = s.tasks[id], t.isLive, t.desired == .running, !t.spec.constraints.isEmpty else { continue }
                let key = "\(t.serviceID)@\(t.version)"
                let constraints = parsed[key] ?? t.spec.constraints.compactMap { try? Constraint(parsing: $0) }
                parsed[key] = constraints
                guard let failed = constraints.first(where: { !$0.matches(node) }) else { continue }
                shutdown(t, "node \(node.name) no longer satisfies \(failed.text)", &s, now: now)
            }
        }
    }
}
