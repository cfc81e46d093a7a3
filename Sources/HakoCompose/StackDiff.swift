import HakoSystem
extension StackService {
    /// Every field as (name, text), in a fixed order, with Swarm's defaults
    /// left out: what a deploy's diff names and what `stack deploy` could print.
    public var fields: [(name: String, value: String)] {
        var out: [(String, String)] = []
        func add(_ n: String, _ v: String?) { if let v, !v.isEmpty { out.append((n, v)) } }
        func list(_ l: [String]) -> String { l.map(quoted).joined(separator: " ") }
        func map(_ m: [String: String]) -> String { m.keys.sorted().map { "\($0)=\(m[$0] ?? "")" }.map(quoted).joined(separator: " ") }
        add("image", image)
        add("command", command.map(list) ?? nil)
        if let e = entrypoint { out.append(("entrypoint", e.isEmpty ? "[]" : list(e))) }
        add("env", list(env))
        add("workdir", workdir)
        add("user", user)
        add("hostname", hostname)
        add("labels", map(labels))
        add("container-labels", map(containerLabels))
        switch mode {
        case .replicated(let n): add("mode", "replicated \(n)")
        case .replicatedJob(let n): add("mode", "replicated-job \(n)")
        case .global: add("mode", "global")
        case .globalJob: add("mode", "global-job")
        }
        if limitCPUMillis > 0 { add("limit-cpu", millis(limitCPUMillis)) }
        if limitMemory > 0 { add("limit-memory", "\(limitMemory)") }
        if limitPids > 0 { add("limit-pids", "\(limitPids)") }
        if reserveCPUMillis > 0 { add("reserve-cpu", millis(reserveCPUMillis)) }
        if reserveMemory > 0 { add("reserve-memory", "\(reserveMemory)") }
        add("ports", ports.map { p in
            var s = "\(p.mode.rawValue):"
            if let ip = p.hostIP { s += ip + ":" }
            if let pub = p.published { s += "\(pub):" }
            return s + "\(p.target)/\(p.proto)"
        }.joined(separator: " "))
        add("constraints", list(constraints))
        add("preferences", list(preferences.map { "spread=" + $0 }))
        if maxReplicasPerNode > 0 { add("max-replicas-per-node", "\(maxReplicasPerNode)") }
        add("restart", "\(restartCondition.rawValue) delay=\(GoDuration.format(restartDelay)) max-attempts=\(restartMaxAttempts) window=\(GoDuration.format(restartWindow))")
        add("update", policy(update))
        add("rollback", policy(rollback))
        add("stop-signal", stopSignal)
        add("stop-grace-period", stopGracePeriod.map(GoDuration.format))
        add("networks", networks.keys.sorted().map { "\($0)(\((networks[$0] ?? []).joined(separator: ",")))" }.joined(separator: " "))
        add("mounts", mounts.map { m in
            var s = "\(m.type.rawValue):\(m.source ?? "")->\(m.target)"
            if m.readOnly { s += ",ro" }
            if let p = m.propagation { s += ",\(p)" }
            if m.noCopy { s += ",nocopy" }
            if let z = m.tmpfsSize { s += ",size=\(z)" }
            return s
        }.joined(separator: " "))
        add("devices", devices.map { "\($0.host):\($0.container):\($0.permissions)" }.joined(separator: " "))
        add("secrets", files(secrets))
        add("configs", files(configs))
        if let h = healthcheck {
            var s = h.disable ? "disabled" : (h.test.map(list) ?? "image's")
            if let v = h.interval { s += " interval=\(GoDuration.format(v))" }
            if let v = h.timeout { s += " timeout=\(GoDuration.format(v))" }
            if let v = h.startPeriod { s += " start-period=\(GoDuration.format(v))" }
            if let v = h.startInterval { s += " start-interval=\(GoDuration.format(v))" }
            if let v = h.retries { s += " retries=\(v)" }
            add("healthcheck", s)
        }
        if initProcess { add("init", "true") }
        if readOnly { add("read-only", "true") }
        add("sysctls", map(sysctls))
        add("cap-add", list(capAdd))
        add("cap-drop", list(capDrop))
        add("dns", list(dns))
        add("dns-search", list(dnsSearch))
        return out
    }

    private func millis(_ m: Int64) -> String {
        m % 1000 == 0 ? "\(m / 1000)" : "\(Double(m) / 1000)"
    }

    private func policy(_ u: UpdatePolicy) -> String {
        "parallelism=\(u.parallelism) delay=\(GoDuration.format(u.delay)) failure-action=\(u.failureAction.rawValue) monitor=\(GoDuration.format(u.monitor)) max-failure-ratio=\(u.maxFailureRatio) order=\(u.order.rawValue)"
    }

    private func files(_ l: [StackFile]) -> String {
        l.map { "\($0.name)->\($0.target)(\($0.uid):\($0.gid):0\(String($0.mode, radix: 8)))" }.joined(separator: " ")
    }

    /// What the cluster cannot carry yet: the fields this service sets
    /// (beyond Swarm's defaults) that `hako cluster stack deploy` refuses
    /// (an ingress port it cannot publish) (docs/compose.md).
    public var clusterGaps: [String] {
        var g: [String] = []
        if ports.contains(where: { $0.mode == .ingress && $0.published == nil }) { g.append("ingress port without a published port") }
        if ports.contains(where: { $0.hostIP != nil && $0.mode == .ingress }) { g.append("ingress port on a host IP") }
        return g
    }
}

func quoted(_ s: String) -> String {
    s.isEmpty || s.contains(where: { $0 == " " || $0 == "\"" || $0 == "\\" || $0 == "\n" || $0 == "\t" })
        ? "\"" + s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n").replacing("\t", with: "\\t") + "\""
        : s
}

/// A deploy as a diff of the stack against the services that exist: those
/// that carry the stack's namespace label. Unchanged services are left alone,
/// changed ones updated (their tasks roll), new ones created; services of the
/// stack that the file no longer has are removed only with `--prune`.
public struct StackDiff: Sendable, Equatable {
    public enum Change: Sendable, Equatable {
        case unchanged
        /// The names of the fields that differ (`StackService.fields`).
        case changed([String])
        case created
        case removed
        /// Not in the file, kept (no `--prune`).
        case kept
    }

    public struct Entry: Sendable, Equatable {
        public var service: String
        public var change: Change
    }

    /// By service name.
    public var entries: [Entry]

    public init(stack: Stack, existing: [StackService], prune: Bool) {
        let mine = existing.filter { $0.labels[Stack.namespaceLabel] == stack.name }
        var byName: [String: StackService] = [:]
        for s in mine { byName[s.name] = s }
        var out: [Entry] = []
        for s in stack.services {
            guard let old = byName.removeValue(forKey: s.name) else { out.append(Entry(service: s.name, change: .created)); continue }
            if old == s { out.append(Entry(service: s.name, change: .unchanged)); continue }
            let a = Dictionary(old.fields, uniquingKeysWith: { x, _ in x }), b = Dictionary(s.fields, uniquingKeysWith: { x, _ in x })
            var names = Set(a.keys).union(b.keys).filter { a[$0] != b[$0] }.sorted()
            // A difference the text does not show (e.g. rounding) still counts.
            if names.isEmpty { names = ["spec"] }
            out.append(Entry(service: s.name, change: .changed(names)))
        }
        for name in byName.keys { out.append(Entry(service: name, change: prune ? .removed : .kept)) }
        entries = out.sorted { $0.service < $1.service }
    }

    public func services(_ change: (Change) -> Bool) -> [String] { entries.filter { change($0.change) }.map(\.service) }
}
