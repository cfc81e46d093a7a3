import HakoImage

/// Global services (`--mode global`, Swarm's): one task on every eligible
/// node — active, not down, of a platform the image exists for, satisfying
/// the constraints. A task is created for its node (its `nodeID` set while it
/// is pending; the scheduling pass only checks that node's resources and
/// ports), so the service follows joins, drains, removals and label changes.
/// Tasks of paused nodes stay; drained, down and no longer eligible nodes
/// lose theirs through `moveTasksOffLostNodes` and `stopTasksOnIneligibleNodes`.
extension Orchestrator {
    /// The nodes a global service wants a task on.
    public static func eligibleNodes(for spec: ServiceSpec, in s: ClusterState, status: (String) -> NodeStatus) -> [NodeRecord] {
        let constraints = spec.constraints.compactMap { try? Constraint(parsing: $0) }
        let platforms = spec.platforms.compactMap { try? PlatformSpec(parsing: $0) }
        let devices = spec.container.devices.map(\.host)
        return s.nodes.values.filter { n in
            n.availability == .active && status(n.id) != .down
                && (platforms.isEmpty || platforms.contains { n.platform.runs($0) })
                && constraints.allSatisfy { $0.matches(n) }
                && devices.allSatisfy { n.has(device: $0) }
                && (spec.networks.isEmpty || n.underlayHost != nil)
        }.sorted { $0.id < $1.id }
    }

    func reconcileGlobal(service svc: ServiceRecord, _ s: inout ClusterState, status: (String) -> NodeStatus, now: Double,
                         newID: () -> String, events: inout [ClusterEvent]) -> Double {
        var byNode: [String: [TaskRecord]] = [:]
        for var t in s.tasks(ofService: svc.id) {
            if t.desired == .shutdown && t.state == .pending {
                // Stopped before it was assigned (its node drained or went down): nothing runs it.
                t.state = .shutdown
                t.updated = now
                s.put(t)
            }
            if let n = t.nodeID { byNode[n, default: []].append(t) } else { shutdown(t, "not a task of a global service", &s, now: now) }
        }
        var units: [RolloutUnit] = []
        for node in Orchestrator.eligibleNodes(for: svc.spec, in: s, status: status) {
            let tasks = byNode[node.id] ?? []
            let live = tasks.filter(\.isLive)
            if live.isEmpty {
                if tasks.contains(where: { isStoppingForUpdate($0, svc) }) {
                    units.append(RolloutUnit(slot: 0, node: node.id, stopping: true))
                    continue
                }
                if let notBefore = replacementTime(svc, tasks, now: now) {
                    for t in tasks where t.desired == .running {
                        var h = t
                        h.desired = .shutdown
                        s.put(h)
                    }
                    let t = create(svc, slot: 0, node: node.id, notBefore: notBefore, &s, now: now, newID: newID, events: &events)
                    units.append(RolloutUnit(slot: 0, node: node.id, current: t, history: tasks.filter { $0.version == svc.version } + [t]))
                }
                continue
            }
            units.append(unit(slot: 0, node: node.id, tasks: tasks, live: live, svc, &s, now: now))
        }
        // Rolling update, node by node (`Orchestrator+Rollout.swift`).
        let wake = rollOut(svc, units, &s, now: now, newID: newID, events: &events)
        // History: the last `history` ended tasks per node; none of nodes gone.
        for (node, tasks) in byNode {
            let ended = tasks.compactMap { s.tasks[$0.id] }.filter { $0.desired == .shutdown && $0.state.isTerminal }
                .sorted { $0.updated > $1.updated }
            for t in ended.dropFirst(s.nodes[node] == nil ? 0 : history) { s.removeTask(t.id) }
        }
        return wake
    }
}
