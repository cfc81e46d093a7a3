/// The scheduling pass for tasks created for their node (a global service's):
/// the node's resources and ports are checked as the scheduler checks any
/// node's; a task that does not fit waits there with the reason.
extension CoordinatorCore {
    func placePinned(now wall: Double) {
        let pinned = state.tasks.values.filter { $0.desired == .running && $0.state == .pending && $0.nodeID != nil }
            .sorted { ($0.serviceName, $0.created, $0.id) < ($1.serviceName, $1.created, $1.id) }
        guard !pinned.isEmpty else { return }
        var snap = snapshot()
        var index: [String: Int] = [:]
        for (i, n) in snap.nodes.enumerated() { index[n.id] = i }
        for var t in pinned {
            if t.notBefore > wall { nextWake = min(nextWake, t.notBefore); continue }
            guard let node = t.nodeID, let i = index[node] else { continue }
            let r = SchedulingRequest(task: t)
            guard scheduler.rejection(snap.nodes[i], r) == nil else {
                let reason = scheduler.explain(r, in: ClusterSnapshot(nodes: [snap.nodes[i]]))
                if t.message != reason {
                    t.message = reason
                    state.put(t)
                    record(ClusterEvent(time: wall, kind: "task", action: "unplaced", id: t.id, name: t.name, message: reason))
                }
                continue
            }
            scheduler.place(r, on: &snap.nodes[i])
            countPlacement(t, at: wall)
            t.state = .assigned
            t.message = ""
            t.updated = wall
            state.put(t)
            record(ClusterEvent(time: wall, kind: "task", action: "assigned", id: t.id, name: t.name, message: state.nodes[node]?.name ?? node))
        }
    }
}
