/// Desired state → tasks: one live task per slot (1…replicas) at the
/// service's current version, replacements per the restart policy, rolling
/// updates (`Orchestrator+Rollout.swift`), tasks of
/// down or draining nodes moved, history pruned. Pure over `ClusterState`:
/// running it twice changes nothing the second time, so the cluster converges
/// from any state (a restart, a partition healing, a crash mid-scale).
public struct Orchestrator: Sendable {
    /// Terminal tasks kept per slot.
    public var history: Int

    public init(history: Int) { self.history = history }

    /// Returns the wall time at which a pass is due again (a monitor period
    /// or an update delay ends), `.infinity` for none.
    @discardableResult
    public func reconcile(_ s: inout ClusterState, status: (String) -> NodeStatus, now: Double,
                          newID: () -> String, events: inout [ClusterEvent]) -> Double {
        var wake = Double.infinity
        moveTasksOffLostNodes(&s, status: status, now: now, events: &events)
        stopTasksOnIneligibleNodes(&s, now: now)
        for svc in s.services.values.sorted(by: { $0.spec.name < $1.spec.name }) {
            if svc.spec.mode.isGlobal {
                wake = min(wake, reconcileGlobal(service: svc, &s, status: status, now: now, newID: newID, events: &events))
                continue
            }
            wake = min(wake, reconcile(service: svc, &s, now: now, newID: newID, events: &events))
        }
        cleanUpRemovedServices(&s, now: now)
        return wake
    }

    /// Tasks on down nodes are orphaned; tasks on draining nodes are stopped.
    /// Either way the slot empties and gets a replacement elsewhere.
    func moveTasksOffLostNodes(_ s: inout ClusterState, status: (String) -> NodeStatus, now: Double, events: inout [ClusterEvent]) {
        for (nodeID, ids) in s.tasksByNode {
            let node = s.nodes[nodeID]
            let st = node == nil ? NodeStatus.down : status(nodeID)
            let draining = node?.availability == .drain
            guard st == .down || draining else { continue }
            for id in ids {
                guard var t = s.tasks[id], t.isLive else { continue }
                t.desired = .shutdown
                if st == .down {
                    t.state = .orphaned
                    t.message = "node \(node?.name ?? nodeID) is down"
                    t.updated = now
                    events.append(ClusterEvent(time: now, kind: "task", action: "orphaned", id: t.id, name: t.name, message: t.message))
                } else {
                    t.message = "node \(node?.name ?? nodeID) is draining"
                }
                s.put(t)
            }
        }
    }

    func reconcile(service svc: ServiceRecord, _ s: inout ClusterState, now: Double, newID: () -> String, events: inout [ClusterEvent]) -> Double {
        var wake = Double.infinity
        let all = s.tasks(ofService: svc.id)
        var bySlot: [Int: [TaskRecord]] = [:]
        for t in all { bySlot[t.slot, default: []].append(t) }
        let replicas = svc.spec.replicas
        var units: [RolloutUnit] = []

        for slot in 1...max(1, replicas) where replicas > 0 {
            let tasks = bySlot[slot] ?? []
            let live = tasks.filter(\.isLive)
            if live.isEmpty {
                if tasks.contains(where: { isStoppingForUpdate($0, svc) }) {
                    units.append(RolloutUnit(slot: slot, stopping: true))
                    continue
                }
                if let notBefore = replacementTime(svc, tasks, now: now) {
                    // The ended tasks become history (prunable) once replaced.
                    for t in tasks where t.desired == .running {
                        var h = t
                        h.desired = .shutdown
                        s.put(h)
                    }
                    // In transition until it counts as updated (an update's batch waits for it).
                    let t = create(svc, slot: slot, notBefore: notBefore, &s, now: now, newID: newID, events: &events)
                    units.append(RolloutUnit(slot: slot, current: t, history: tasks.filter { $0.version == svc.version } + [t]))
                }
                continue
            }
            units.append(unit(slot: slot, node: nil, tasks: tasks, live: live, svc, &s, now: now))
        }
        // Slots past the replica count.
        for (slot, tasks) in bySlot where slot > replicas {
            for t in tasks where t.isLive { shutdown(t, "scaled down", &s, now: now) }
        }
        wake = min(wake, rollOut(svc, units, &s, now: now, newID: newID, events: &events))
        prune(svc, bySlot: bySlot, &s)
        return wake
    }

    /// A unit with live tasks: the best of each version kept, duplicates (after a partition heals) stopped.
    func unit(slot: Int, node: String?, tasks: [TaskRecord], live: [TaskRecord], _ svc: ServiceRecord, _ s: inout ClusterState, now: Double) -> RolloutUnit {
        let current = live.filter { $0.version == svc.version }
        let old = live.filter { $0.version != svc.version }
        let winner = current.first(where: { $0.state == .running }) ?? best(current)
        for t in current where t.id != winner?.id { shutdown(t, "duplicate of \(winner?.id.prefix(12) ?? "")", &s, now: now) }
        let o = best(old)
        for t in old where t.id != o?.id { shutdown(t, "duplicate of \(o?.id.prefix(12) ?? "")", &s, now: now) }
        return RolloutUnit(slot: slot, node: node, old: o, current: winner, stopping: tasks.contains { isStopping($0, svc) },
                           history: tasks.filter { $0.version == svc.version })
    }

    /// The most advanced of several live tasks (running, then starting, then assigned…).
    func best(_ tasks: [TaskRecord]) -> TaskRecord? {
        let rank: [TaskState: Int] = [.running: 0, .starting: 1, .assigned: 2, .pending: 3]
        return tasks.min { (rank[$0.state] ?? 9, $0.created) < (rank[$1.state] ?? 9, $1.created) }
    }

    /// When a slot whose tasks all ended gets a new one, per the restart
    /// policy; nil: not at all. Tasks stopped or orphaned by the coordinator
    /// are replaced at once; tasks that ended by themselves after the delay.
    func replacementTime(_ svc: ServiceRecord, _ tasks: [TaskRecord], now: Double) -> Double? {
        let spec = svc.spec
        let ended = tasks.filter { $0.version == svc.version && $0.state.isTerminal }
        guard let last = ended.max(by: { $0.updated < $1.updated }) else { return now }
        let byItself = last.state == .complete || last.state.isFailure
        guard byItself else { return now }
        // A job's task that ran to completion is done.
        if spec.mode.isJob && last.state == .complete { return nil }
        switch spec.restartCondition {
        case .none: return nil
        case .onFailure where last.state == .complete: return nil
        default: break
        }
        // Failures count within the window that ends at the latest one (Swarm's
        // restart window), so the decision depends on the history alone and a
        // slot that gave up stays given up as time passes.
        let failures = ended.filter { $0.state.isFailure && (spec.restartWindow == 0 || $0.updated > last.updated - spec.restartWindow) }.count
        if spec.restartMaxAttempts > 0 && failures >= spec.restartMaxAttempts { return nil }
        return last.updated + spec.restartDelay
    }

    /// A new task for `slot`; `node`: created for that node (a global service's).
    @discardableResult
    func create(_ svc: ServiceRecord, slot: Int, node: String? = nil, notBefore: Double, _ s: inout ClusterState, now: Double, newID: () -> String,
                events: inout [ClusterEvent]) -> TaskRecord {
        let t = TaskRecord(id: newID(), serviceID: svc.id, serviceName: svc.spec.name, slot: slot, version: svc.version, spec: svc.spec,
                           nodeID: node, desired: .running, state: .pending,
                           message: notBefore > now ? "restart delay until \(Int(notBefore - now + 0.5)) s from now" : "",
                           containerID: nil, exitCode: nil, created: now, updated: now, notBefore: notBefore)
        s.put(t)
        events.append(ClusterEvent(time: now, kind: "task", action: "created", id: t.id, name: t.name, message: "version \(svc.version)"))
        return t
    }

    func shutdown(_ t: TaskRecord, _ why: String, _ s: inout ClusterState, now: Double) {
        var t = t
        t.desired = .shutdown
        t.message = why
        if t.nodeID == nil || t.state == .pending {
            // Never placed: nothing to stop.
            t.state = .shutdown
            t.updated = now
        }
        s.put(t)
    }

    /// Keeps the last `history` ended tasks per slot, and none past the replicas.
    func prune(_ svc: ServiceRecord, bySlot: [Int: [TaskRecord]], _ s: inout ClusterState) {
        for (slot, tasks) in bySlot {
            let ended = tasks.compactMap { s.tasks[$0.id] }.filter { $0.desired == .shutdown && $0.state.isTerminal }
                .sorted { $0.updated > $1.updated }
            let keep = slot > svc.spec.replicas ? 0 : history
            for t in ended.dropFirst(keep) { s.removeTask(t.id) }
            // Ended tasks the policy will not replace stay as they are (desired running) for `service ps`.
        }
    }

    /// Tasks of removed services: stopped, then deleted once ended.
    func cleanUpRemovedServices(_ s: inout ClusterState, now: Double) {
        for (sid, ids) in s.tasksByService where s.services[sid] == nil {
            for id in ids {
                guard let t = s.tasks[id] else { continue }
                if t.state.isTerminal || t.nodeID == nil {
                    s.removeTask(id)
                } else if t.desired != .shutdown {
                    shutdown(t, "service removed", &s, now: now)
                }
            }
        }
    }
}
