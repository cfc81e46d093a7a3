/// The scheduling pass: pending tasks, a snapshot of the nodes, the pure scheduler.
extension CoordinatorCore {
    /// The nodes as the scheduler sees them, in a stable order.
    public func snapshot() -> ClusterSnapshot {
        var out: [SchedulerNode] = []
        out.reserveCapacity(state.nodes.count)
        for n in state.nodes.values.sorted(by: { $0.id < $1.id }) {
            var node = SchedulerNode(record: n, status: dispatcher.status(n.id), load: dispatcher.nodes[n.id]?.load ?? NodeLoad())
            // A pending task created for its node (a global service's) is not there yet.
            for t in state.tasks(onNode: n.id) where t.isLive && t.state != .pending {
                node.reserved.cpuMillis += t.spec.reservations.cpuMillis
                node.reserved.memory += t.spec.reservations.memory
                node.tasks += 1
                node.serviceTasks[t.serviceID, default: 0] += 1
                node.hostPorts.formUnion(t.spec.hostPorts)
            }
            out.append(node)
        }
        return ClusterSnapshot(nodes: out)
    }

    /// Why the node was chosen, for `service ps`: "score 1.25 (cpu 12%,
    /// memory 40%, 1 of the service, 3 tasks); next node3 1.31".
    func placementNote(_ p: Placement) -> String? {
        guard let s = p.score else { return nil }
        var out = "score \(CoordinatorCore.twoDecimals(s.total)) (cpu \(Int((s.cpu * 100).rounded()))%, memory \(Int((s.memory * 100).rounded()))%, "
            + "\(s.serviceTasks) of the service, \(s.tasks) task\(s.tasks == 1 ? "" : "s"))"
        if let n = p.nextNode, let score = p.nextScore {
            out += "; next \(state.nodes[n]?.name ?? String(n.prefix(12))) \(CoordinatorCore.twoDecimals(score))"
        }
        return out
    }

    static func twoDecimals(_ x: Double) -> String {
        let hundredths = Int((x * 100).rounded())
        let frac = abs(hundredths) % 100
        return "\(hundredths < 0 ? "-" : "")\(abs(hundredths) / 100).\(frac < 10 ? "0" : "")\(frac)"
    }

    /// Places every pending task whose restart delay has passed; an unplaced
    /// task keeps the reason (written when it changes, not on every pass).
    func schedulePending(now wall: Double) {
        nextWake = .infinity
        placePinned(now: wall)
        var ready: [TaskRecord] = []
        for t in state.tasks.values where t.desired == .running && t.state == .pending && t.nodeID == nil {
            if t.notBefore <= wall { ready.append(t) } else { nextWake = min(nextWake, t.notBefore) }
        }
        guard !ready.isEmpty else { return }
        ready.sort { ($0.serviceName, $0.version, $0.slot) < ($1.serviceName, $1.version, $1.slot) }
        var snap = snapshot()
        let placements = scheduler.schedule(SchedulingRequest.requests(for: ready), on: &snap, using: &rng)
        for p in placements {
            guard var t = state.tasks[p.taskID] else { continue }
            if let node = p.nodeID {
                countPlacement(t, at: wall)
                t.nodeID = node
                t.state = .assigned
                t.message = ""
                t.placement = placementNote(p)
                t.updated = wall
                state.put(t)
                record(ClusterEvent(time: wall, kind: "task", action: "assigned", id: t.id, name: t.name, message: state.nodes[node]?.name ?? node))
            } else if t.message != p.reason {
                t.message = p.reason
                state.put(t)
                log.info("\(t.name) not placed: \(p.reason)")
                record(ClusterEvent(time: wall, kind: "task", action: "unplaced", id: t.id, name: t.name, message: p.reason))
            }
        }
    }
}
