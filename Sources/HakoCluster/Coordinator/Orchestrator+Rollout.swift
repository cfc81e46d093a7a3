/// Rolling updates and rollbacks, Swarm's way. A unit (a replicated
/// service's slot, a global service's node) is updated when its task of the
/// current version counts as updated: healthy, or running for the monitor
/// period when it has no check. `parallelism` units are replaced at a time
/// (start-first: the new task beside the old, which stops once the new one is
/// updated; stop-first: the old one stops, then the new one starts), with
/// `delay` between batches. A task of the update that fails before it counts
/// as updated, or within the monitor period after, is a failure; once the
/// failures exceed `maxFailureRatio` of the units, the failure action applies
/// (pause, continue, or roll back to the previous spec). Where the update
/// stands is the service's `UpdateStatus`, stored with it: the logic stays a
/// pure function of the state and the clock.
extension Orchestrator {
    /// One replica's place in a rollout.
    struct RolloutUnit {
        var slot: Int
        /// A global service's node (its tasks are created for it).
        var node: String?
        /// Its live task of an older version (the best one; duplicates are stopped).
        var old: TaskRecord?
        /// Its live task of the current version.
        var current: TaskRecord?
        /// An older task told to stop has not ended yet (stop-first: its successor waits).
        var stopping = false
        /// Its tasks of the current version, live or ended.
        var history: [TaskRecord] = []

        /// A task of the current version failed here: it is retried per the restart policy, outside the batches.
        var failedBefore: Bool { history.contains { $0.state.isTerminal && $0.state.isFailure } }
    }

    static let healthy = "healthy"

    /// The update config in effect: the rollback's while rolling back (the
    /// one of the spec rolled back from, which the admin gave with the update).
    func rolloutConfig(_ svc: ServiceRecord) -> UpdateConfig {
        guard let st = svc.updateStatus, st.state.isRollback else { return svc.spec.update }
        return svc.previousSpec?.rollback ?? svc.spec.rollback
    }

    /// An older task told to stop whose container has not ended yet: its unit
    /// stays in transition (it still runs: the order's bounds count it).
    func isStopping(_ t: TaskRecord, _ svc: ServiceRecord) -> Bool {
        t.version != svc.version && t.desired == .shutdown && !t.state.isTerminal && t.nodeID != nil && t.state != .pending
    }

    /// Stop-first: an older task being stopped (its successor waits until it ended).
    func isStoppingForUpdate(_ t: TaskRecord, _ svc: ServiceRecord) -> Bool {
        rolloutConfig(svc).order == .stopFirst && isStopping(t, svc)
    }

    /// Keeps a live task's `servingSince` true: set when it runs healthy (or
    /// without a check), cleared while it is starting or unhealthy.
    func markServing(_ t: TaskRecord, _ s: inout ClusterState, now: Double) -> TaskRecord {
        var t = t
        let serving = t.state == .running && (t.health == nil || t.health == Orchestrator.healthy)
        if serving && t.servingSince == nil {
            t.servingSince = now
        } else if !serving && t.servingSince != nil && !t.state.isTerminal {
            t.servingSince = nil
        } else {
            return t
        }
        s.put(t)
        return t
    }

    /// Counts as updated: healthy, or without a check running for the monitor period.
    func isUpdated(_ t: TaskRecord, _ cfg: UpdateConfig, now: Double) -> Bool {
        guard t.state == .running, let since = t.servingSince else { return false }
        return t.health == Orchestrator.healthy || now - since >= cfg.monitor
    }

    /// Advances the service's rollout over its units; returns the wall time
    /// at which something becomes due (the monitor period or a delay ends).
    func rollOut(_ service: ServiceRecord, _ units: [RolloutUnit], _ s: inout ClusterState, now: Double, newID: () -> String,
                 events: inout [ClusterEvent]) -> Double {
        var svc = service
        let cfg = rolloutConfig(svc)
        var wake = Double.infinity
        var units = units
        for i in units.indices {
            guard let c = units[i].current else { continue }
            let t = markServing(c, &s, now: now)
            units[i].current = t
            if t.state == .running, t.health == nil, let since = t.servingSince, now - since < cfg.monitor {
                wake = min(wake, since + cfg.monitor)
            }
        }

        // Updated units: their old task goes (and the unit stays in transition until it has ended).
        for i in units.indices {
            guard let o = units[i].old, let c = units[i].current, isUpdated(c, cfg, now: now) else { continue }
            shutdown(o, "replaced by \(c.id.prefix(12))", &s, now: now)
            units[i].old = nil
            if let stopped = s.tasks[o.id], isStopping(stopped, svc) { units[i].stopping = true }
        }

        // Failures of this update, each counted once; past the ratio, the failure action.
        var status = svc.updateStatus
        if var st = status, st.state.isActive {
            for t in s.tasks(ofService: svc.id).sorted(by: { $0.updated < $1.updated })
            where t.version == svc.version && t.state.isFailure && t.created >= st.startedAt && !st.failedTasks.contains(t.id) {
                if let since = t.servingSince, t.updated - since >= cfg.monitor { continue }
                st.failedTasks.append(t.id)
            }
            let total = max(1, units.count)
            if let last = st.failedTasks.last, Double(st.failedTasks.count) / Double(total) > cfg.maxFailureRatio {
                let why = "failure or early termination of task \(last.prefix(12))"
                switch cfg.failureAction {
                case .continue:
                    break
                case .rollback where !st.state.isRollback && svc.previousSpec != nil:
                    var rolled = svc
                    if (try? Orchestrator.rollBack(&rolled, &s, now: now, reason: "update rolled back due to \(why)")) != nil {
                        events.append(ClusterEvent(time: now, kind: "service", action: "rollback_started", id: svc.id, name: svc.spec.name,
                                                   message: "update rolled back due to \(why)"))
                        return now
                    }
                    fallthrough
                case .pause, .rollback:
                    st.state = st.state.isRollback ? .rollbackPaused : .paused
                    st.message = "\(st.state.isRollback ? "rollback" : "update") paused due to \(why)"
                        + (cfg.failureAction == .rollback ? " (no previous spec to roll back to)" : "")
                    events.append(ClusterEvent(time: now, kind: "service", action: st.state.rawValue, id: svc.id, name: svc.spec.name, message: st.message))
                }
            }
            status = st
        }

        // New batches: `parallelism` units in transition at most, and with a delay, whole batches `delay` apart.
        let inTransition = units.filter { u in
            u.stopping || (u.current.map { !isUpdated($0, cfg, now: now) } ?? false) && !u.failedBefore
        }.count
        let limit = cfg.parallelism == 0 ? Int.max : cfg.parallelism
        var budget = 0
        let active = status.map(\.state.isActive) ?? true
        if active {
            if cfg.delay > 0, var st = status {
                if st.batchInFlight && inTransition == 0 {
                    st.batchInFlight = false
                    st.nextBatchAt = now + cfg.delay
                }
                if !st.batchInFlight && inTransition == 0 && now >= (st.nextBatchAt ?? 0) {
                    budget = limit
                } else if let at = st.nextBatchAt, at > now {
                    wake = min(wake, at)
                }
                status = st
            } else {
                budget = max(0, limit - inTransition)
            }
        }
        var fresh = 0, started = 0
        for u in units {
            guard let o = u.old, u.current == nil else { continue }
            if o.state != .running {
                // Not running yet: nothing to keep, replaced at once.
                shutdown(o, "replaced by an update", &s, now: now)
                create(svc, slot: u.slot, node: u.node, notBefore: now, &s, now: now, newID: newID, events: &events)
                continue
            }
            if !u.history.isEmpty {
                // Reached before and failed (start-first: the old task runs on): retried per the restart policy.
                if let notBefore = replacementTime(svc, u.history, now: now) {
                    create(svc, slot: u.slot, node: u.node, notBefore: notBefore, &s, now: now, newID: newID, events: &events)
                }
                continue
            }
            fresh += 1
            guard budget > 0 else { continue }
            budget -= 1
            started += 1
            if cfg.order == .startFirst {
                create(svc, slot: u.slot, node: u.node, notBefore: now, &s, now: now, newID: newID, events: &events)
            } else {
                // Its successor is created once it has stopped.
                shutdown(o, "stopped for an update", &s, now: now)
            }
        }
        if started > 0, cfg.delay > 0 { status?.batchInFlight = true }

        // Done: every unit reached and none in transition.
        if var st = status, st.state.isActive, fresh == 0, inTransition == 0 {
            st.state = st.state.isRollback ? .rollbackCompleted : .completed
            st.completedAt = now
            st.message = st.state.isRollback ? "rollback completed" : "update completed"
            events.append(ClusterEvent(time: now, kind: "service", action: st.state.rawValue, id: svc.id, name: svc.spec.name, message: ""))
            status = st
        }
        if status != svc.updateStatus {
            svc.updateStatus = status
            s.put(svc)
        }
        return wake
    }

    /// Swarm's rollback: the previous spec comes back as a new version (the
    /// spec rolled back from becomes the previous one). Live tasks that run
    /// the restored spec belong to the new version as they are; the others
    /// are replaced with the rollback config.
    static func rollBack(_ svc: inout ServiceRecord, _ s: inout ClusterState, now: Double, reason: String) throws(ClusterError) {
        guard let previous = svc.previousSpec else { throw .invalid("service \(svc.spec.name) has no previous spec to roll back to") }
        let from = svc.spec
        let restored = previous
        svc.spec = restored
        svc.previousSpec = from
        svc.version += 1
        svc.updated = now
        svc.updateStatus = UpdateStatus(state: .rollbackStarted, startedAt: now, message: reason)
        s.put(svc)
        for var t in s.tasks(ofService: svc.id) where t.isLive && !restored.needsNewTasks(comparedTo: t.spec) {
            t.version = svc.version
            t.spec = restored
            s.put(t)
        }
    }
}
