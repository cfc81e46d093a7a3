import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoCluster
import HakoEngine
import HakoSystem

struct ClusterService: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Manage services: replicated tasks placed by the scheduler.",
        subcommands: [ServiceCreate.self, ServiceLs.self, ServiceInspect.self, ServiceScale.self, ServiceUpdate.self,
                      ServiceRollback.self, ServiceRm.self, ServicePs.self, ServiceLogs.self])
}

/// Flags that shape a spec; on `update` only the given ones change.
struct ServiceFlags: ParsableArguments {
    @Option(name: [.short("e"), .long("env")], help: "Environment variable (KEY=VALUE).") var env: [String] = []
    @Option(name: .long("env-file"), help: "Read environment variables from a file.") var envFile: [String] = []
    @Option(name: .long("entrypoint"), help: "Overwrite the image's entrypoint (\"\" clears it).") var entrypoint: String?
    @Option(name: [.short("w"), .long("workdir")], help: "Working directory inside the containers.") var workdir: String?
    @Option(name: [.short("u"), .long("user")], help: "Username or UID (<name|uid>[:<group|gid>]).") var user: String?
    @Option(name: [.short("l"), .long("label")], help: "Service label (KEY=VALUE).") var label: [String] = []
    @Option(name: .long("container-label"), help: "Container label (KEY=VALUE).") var containerLabel: [String] = []
    @Option(name: .long("reserve-cpu"), help: "CPUs each task reserves (e.g. 0.5).") var reserveCPU: String?
    @Option(name: .long("reserve-memory"), help: "Memory each task reserves (e.g. 256m).") var reserveMemory: String?
    @Option(name: .long("limit-cpu"), help: "CPUs each task may use (its cgroup's quota, e.g. 0.5).") var limitCPU: String?
    @Option(name: .long("limit-memory"), help: "Memory each task may use (its cgroup's limit, e.g. 64m).") var limitMemory: String?
    @Option(name: [.short("p"), .long("publish")], help: "Publish a port on the node running each task: [HOST_PORT:]CONTAINER_PORT[/PROTOCOL] (no host port: the node picks one).") var publish: [String] = []
    @Option(name: .long("ingress"), help: "Publish a port through the routing mesh: PUBLISHED:TARGET[/PROTOCOL] answered on every node, forwarded to any running task over the overlay.") var ingress: [String] = []
    @Option(name: .long("constraint"), help: "Placement constraint: node.labels.KEY==VALUE, node.platform.arch!=arm, node.hostname==…") var constraint: [String] = []
    @Option(name: .long("placement-pref"), help: "Placement preference: spread=node.labels.KEY (tasks spread evenly over its values); repeat for several, the first first.") var placementPref: [String] = []
    @Option(name: .long("max-replicas-per-node"), help: "Tasks of the service one node runs at most (0: no limit).") var maxReplicasPerNode: Int?
    @Option(name: .long("platform"), help: "A platform the image exists for (linux/arm64, linux/arm/v7); repeat for several.") var platform: [String] = []
    @Option(name: .long("restart"), help: "The container's own restart policy (default on-failure:3).") var restart: String?
    @Option(name: .long("restart-condition"), help: "When a task that ended is replaced: any, on-failure, none.") var restartCondition: String?
    @Option(name: .long("restart-max-attempts"), help: "Replacements per replica before giving up (0: no limit).") var restartMaxAttempts: Int?
    @Option(name: .long("restart-delay"), help: "Wait before replacing a task that ended (default 5s).") var restartDelay: String?
    @Option(name: .long("restart-window"), help: "Window in which failures count against --restart-max-attempts, back from the latest (e.g. 1m; default 0: all count).") var restartWindow: String?
    @Option(name: [.long("network"), .long("net")], help: "Network: cluster (the default: the node's bridge on its leased subnet), host or none; or cluster networks (network create), repeatable: NAME or name=NAME,alias=A,alias=B.") var network: [String] = []
    @Option(name: .long("stop-signal"), help: "Signal that stops the containers.") var stopSignal: String?
    @Option(name: .long("stop-timeout"), help: "Seconds to wait before killing on stop.") var stopTimeout: Int?
    @Option(name: .long("stop-grace-period"), help: "Time to wait before killing on stop (e.g. 10s, 1m30s).") var stopGracePeriod: String?
    @OptionGroup(title: "Health check") var health: HealthFlags
    @OptionGroup(title: "Rolling updates and rollbacks") var rollout: RolloutFlags
    @OptionGroup(title: "Container") var container: ServiceContainerFlags

    /// Applies the flags given to `spec`.
    func apply(to spec: inout ServiceSpec) throws {
        if !env.isEmpty || !envFile.isEmpty {
            var files: [String] = []
            for f in envFile { files += try EnvFile.parse(try FS.readString(f)) }
            spec.env = EnvFile.merge(spec.env, files, env.map { $0.contains("=") ? $0 : "\($0)=\(getenv($0).map { String(cString: $0) } ?? "")" })
        }
        if let e = entrypoint { spec.entrypoint = e }
        if let w = workdir { spec.workdir = w }
        if let u = user { spec.user = u }
        for l in label { try setLabel(l, &spec.serviceLabels) }
        for l in containerLabel { try setLabel(l, &spec.labels) }
        if let c = reserveCPU {
            guard let v = Double(c), v >= 0, v < 100_000 else { throw HakoError(.failed, "invalid --reserve-cpu \"\(c)\"") }
            spec.reservations.cpuMillis = Int64((v * 1000).rounded())
        }
        if let m = reserveMemory {
            guard let v = ByteSize.parse(m.trimmed).flatMap({ Int64(exactly: $0) }) else { throw HakoError(.failed, "invalid --reserve-memory \"\(m)\"") }
            spec.reservations.memory = v
        }
        if let c = limitCPU {
            guard let v = Double(c), v >= 0, v < 100_000 else { throw HakoError(.failed, "invalid --limit-cpu \"\(c)\"") }
            spec.limits.cpuMillis = Int64((v * 1000).rounded())
        }
        if let m = limitMemory {
            guard let v = ByteSize.parse(m.trimmed).flatMap({ Int64(exactly: $0) }) else { throw HakoError(.failed, "invalid --limit-memory \"\(m)\"") }
            spec.limits.memory = v
        }
        if !publish.isEmpty { spec.ports = publish }
        if !ingress.isEmpty { spec.ingress = ingress }
        if !constraint.isEmpty { spec.constraints = constraint }
        if !placementPref.isEmpty { spec.placementPreferences = placementPref }
        if let m = maxReplicasPerNode { spec.maxReplicasPerNode = m }
        if !platform.isEmpty { spec.platforms = platform }
        if let r = restart { spec.restart = r }
        if let c = restartCondition {
            guard let v = RestartCondition(rawValue: c) else { throw HakoError(.failed, "invalid --restart-condition \"\(c)\" (any, on-failure, none)") }
            spec.restartCondition = v
        }
        if let n = restartMaxAttempts { spec.restartMaxAttempts = n }
        if let d = restartDelay {
            guard let v = Durations.parse(d) else { throw HakoError(.failed, "invalid --restart-delay \"\(d)\"") }
            spec.restartDelay = v
        }
        if let w = restartWindow {
            guard let v = Durations.parse(w), v >= 0 else { throw HakoError(.failed, "invalid --restart-window \"\(w)\"") }
            spec.restartWindow = v
        }
        try rollout.apply(to: &spec)
        try spec.setNetworks(network)
        if let s = stopSignal { spec.stopSignal = s }
        if let t = stopTimeout { spec.stopTimeout = t }
        if let g = stopGracePeriod {
            guard let v = Durations.parse(g), v >= 0 else { throw HakoError(.failed, "invalid --stop-grace-period \"\(g)\"") }
            spec.stopTimeout = Int(v.rounded(.up))
        }
        try container.apply(to: &spec.container)
        // Given flags change the service's check field by field (the test too, when given).
        if let h = try health.healthCheck() { spec.healthCheck = h.merged(over: spec.healthCheck) }
    }
}

func setLabel(_ kv: String, _ labels: inout [String: String]) throws {
    let parts = kv.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
    guard let k = parts.first, !k.isEmpty else { throw HakoError(.failed, "invalid label \"\(kv)\" (KEY=VALUE)") }
    labels[k] = parts.count > 1 ? parts[1] : ""
}

/// The platforms an image exists for, from its registry's manifest index
/// (the registry settings of this machine's data root apply). An image the
/// registry cannot tell about (not pushed yet, registry unreachable, an image
/// only imported on the nodes) gets none: its tasks may go to any node.
func registryPlatforms(_ image: String) -> [String] {
    do {
        return try Engine.registryPlatforms(image, paths: EnginePaths.resolve(root: nil, runRoot: nil))
    } catch {
        AttachSession.writeAll(2, Array("warning: cannot read the platforms of \(image) (\(error)); the tasks of \(image) may be placed on a node of any platform (give --platform to choose)\n".utf8))
        return []
    }
}

/// Waits (bounded) until every replica runs at the service's current version.
func waitConverged(_ client: ClusterClient, service: String, timeout: Double) throws {
    let deadline = monotonicSeconds() + timeout
    while true {
        let v = try client.request(MessageType.serviceInspect, ServiceRef(service: service), as: ServiceView.self)
        let want = v.desired ?? v.spec.replicas
        // Tasks no longer wanted must have stopped too (`scale web=0` returns
        // once none runs), except on nodes that are down.
        let stopped = (v.stopping ?? 0) == 0
        if let done = v.completed {
            // A job: every task ran to completion.
            if done >= want && stopped { return }
        } else if v.runningCurrent == want && v.running == want && stopped { return }
        if let st = v.rollout, st.State == UpdateStatus.State.paused.rawValue || st.State == UpdateStatus.State.rollbackPaused.rawValue {
            throw HakoError(.failed, "service \(v.name): \(st.Message); `hako cluster service update \(v.name)` starts it again, `hako cluster service rollback \(v.name)` reverts it")
        }
        if monotonicSeconds() > deadline {
            let still = stopped ? "" : ", \(v.stopping ?? 0) still stopping"
            throw HakoError(.failed, "service \(v.name): \(v.completed ?? v.runningCurrent)/\(want) tasks \(v.completed == nil ? "running" : "completed")\(still) after \(Durations.format(timeout)); see `hako cluster service ps \(v.name)`")
        }
        usleep(100_000)
    }
}

struct ServiceCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a service.")
    @OptionGroup var options: ClusterOptions
    @OptionGroup var flags: ServiceFlags
    @OptionGroup(title: "Secrets and configs") var files: ServiceFileFlags
    @Option(name: .long("name"), help: "Service name (default: a generated one).") var name: String?
    @Option(name: .long("replicas"), help: "Number of tasks (default 1).") var replicas: Int?
    @Option(name: .long("mode"), help: "replicated (--replicas tasks), global (one task on every eligible node), replicated-job or global-job (tasks that run to completion).") var mode = "replicated"
    @Flag(name: .long("wait"), help: "Wait until every task runs (a job's: has completed).") var wait = false
    @Flag(name: .long("no-resolve-image"), help: "Do not ask the image's registry for its platforms (an image imported on the nodes).") var noResolveImage = false
    @Option(name: .long("timeout"), help: "Bound for --wait (default 2m).") var timeout = "2m"
    @Argument(parsing: .passthrough, help: "IMAGE [COMMAND] [ARG...]") var imageAndCommand: [String] = []

    func run() throws {
        try clusterCommand {
            guard let image = imageAndCommand.first else { throw ValidationError("\"service create\" requires an image") }
            var spec = ServiceSpec(name: name ?? Names.generate().replacingOccurrences("_", "-"), image: image)
            let command = Array(imageAndCommand.dropFirst())
            if !command.isEmpty { spec.command = command }
            guard let m = ServiceMode(rawValue: mode) else { throw HakoError(.failed, "invalid --mode \"\(mode)\": replicated, global, replicated-job or global-job") }
            spec.mode = m
            if let r = replicas {
                guard !m.isGlobal else { throw HakoError(.failed, "--replicas can only be used with replicated or replicated-job mode") }
                spec.replicas = r
            }
            try flags.apply(to: &spec)
            try files.apply(to: &spec)
            try spec.validate()
            guard let bound = Durations.parse(timeout) else { throw HakoError(.failed, "invalid --timeout \"\(timeout)\"") }
            let client = try options.client()
            if flags.platform.isEmpty && !noResolveImage { spec.platforms = registryPlatforms(image) }
            let v = try client.request(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
            if wait { try waitConverged(client, service: v.id, timeout: bound) }
            if options.json { try printJSON(v) } else { print(v.id) }
        }
    }
}

extension String {
    func replacingOccurrences(_ a: Character, _ b: Character) -> String { String(map { $0 == a ? b : $0 }) }
}

struct ServiceLs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List services.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display IDs.") var quiet = false

    func run() throws {
        try clusterCommand {
            let list = try options.client().request(MessageType.serviceList, EmptyBody(), as: ServiceList.self).services
            if quiet { for s in list { print(s.id) }; return }
            try options.output().print(list) { printTable(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "UPDATE"], list.map {
                [String($0.id.prefix(12)), $0.name, $0.spec.mode.rawValue, "\($0.running)/\($0.desired ?? $0.spec.replicas)" + ($0.completed.map { " (\($0) completed)" } ?? ""),
                 $0.spec.image, $0.updateStatus]
            }) }
        }
    }
}

struct ServiceInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show services in detail (JSON).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "SERVICE...") var services: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            for s in services { try printJSON(try client.request(MessageType.serviceInspect, ServiceRef(service: s), as: ServiceView.self)) }
        }
    }
}

struct ServiceScale: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scale", abstract: "Set services' replica counts: SERVICE=REPLICAS...")
    @OptionGroup var options: ClusterOptions
    @Flag(name: .long("wait"), help: "Wait until every task runs.") var wait = false
    @Option(name: .long("timeout"), help: "Bound for --wait (default 2m).") var timeout = "2m"
    @Argument(help: "SERVICE=REPLICAS...") var targets: [String]

    func run() throws {
        try clusterCommand {
            var parsed: [(String, Int)] = []
            for t in targets {
                let p = t.split(separator: "=", maxSplits: 1).map(String.init)
                guard p.count == 2, let n = Int(p[1]), n >= 0 else { throw HakoError(.failed, "invalid scale \"\(t)\": SERVICE=REPLICAS") }
                parsed.append((p[0], n))
            }
            guard let bound = Durations.parse(timeout) else { throw HakoError(.failed, "invalid --timeout \"\(timeout)\"") }
            let client = try options.client()
            for (s, n) in parsed {
                let v = try client.request(MessageType.serviceScale, ServiceScaleRequest(service: s, replicas: n), as: ServiceView.self)
                if wait { try waitConverged(client, service: v.id, timeout: bound) }
                print("\(v.name) scaled to \(n)")
            }
        }
    }
}

struct ServiceUpdate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Change a service; a change other than the replica count or the update settings replaces its tasks per --update-* (Swarm's rolling update); on a paused update, starts it again.")
    @OptionGroup var options: ClusterOptions
    @OptionGroup var flags: ServiceFlags
    @OptionGroup(title: "Secrets and configs") var files: ServiceFileFlags
    @OptionGroup(title: "Secrets and configs") var fileChanges: ServiceFileUpdateFlags
    @Option(name: .long("image"), help: "New image.") var image: String?
    @Option(name: .long("args"), help: "New command and arguments (split at spaces).") var args: String?
    @Option(name: .long("replicas"), help: "Number of tasks.") var replicas: Int?
    @Option(name: .long("env-rm"), help: "Remove an environment variable.") var envRm: [String] = []
    @Option(name: .long("label-rm"), help: "Remove a service label.") var labelRm: [String] = []
    @Option(name: .long("container-label-rm"), help: "Remove a container label.") var containerLabelRm: [String] = []
    @Option(name: .long("mount-rm"), help: "Remove a mount by its target path.") var mountRm: [String] = []
    @Option(name: .long("device-rm"), help: "Remove a device by its host path.") var deviceRm: [String] = []
    @Option(name: .long("network-add"), help: "Put the service on a cluster network too (NAME or name=NAME,alias=A).") var networkAdd: [String] = []
    @Option(name: .long("network-rm"), help: "Take the service off a cluster network.") var networkRm: [String] = []
    @Option(name: .long("constraint-add"), help: "Add a placement constraint.") var constraintAdd: [String] = []
    @Option(name: .long("constraint-rm"), help: "Remove a placement constraint.") var constraintRm: [String] = []
    @Option(name: .long("placement-pref-add"), help: "Add a placement preference (spread=node.labels.KEY).") var placementPrefAdd: [String] = []
    @Option(name: .long("placement-pref-rm"), help: "Remove a placement preference.") var placementPrefRm: [String] = []
    @Flag(name: .long("force"), help: "Replace the tasks even if nothing changed.") var force = false
    @Flag(name: .long("rollback"), help: "Revert to the previous spec (as `service rollback`; no other flag).") var rollback = false
    @Flag(name: .long("wait"), help: "Wait until every task runs the new version.") var wait = false
    @Flag(name: .long("no-resolve-image"), help: "Do not ask the new image's registry for its platforms.") var noResolveImage = false
    @Option(name: .long("timeout"), help: "Bound for --wait (default 5m).") var timeout = "5m"
    @Argument(help: "SERVICE") var service: String

    func run() throws {
        try clusterCommand {
            guard let bound = Durations.parse(timeout) else { throw HakoError(.failed, "invalid --timeout \"\(timeout)\"") }
            let client = try options.client()
            if rollback { return try rollbackService(service, client: client, waitingUpTo: wait ? bound : nil) }
            let current = try client.request(MessageType.serviceInspect, ServiceRef(service: service), as: ServiceView.self)
            var spec = current.spec
            if let i = image { spec.image = i }
            if let a = args { spec.command = a.split(separator: " ").map(String.init) }
            if let r = replicas { spec.replicas = r }
            spec.env = spec.env.filter { e in !envRm.contains { e == $0 || e.hasPrefix($0 + "=") } }
            for l in labelRm { spec.serviceLabels[l] = nil }
            for l in containerLabelRm { spec.labels[l] = nil }
            spec.container.mounts.removeAll { mountRm.contains($0.target) }
            spec.container.devices.removeAll { deviceRm.contains($0.host) }
            try spec.changeNetworks(remove: networkRm, add: networkAdd)
            try flags.apply(to: &spec)
            try files.apply(to: &spec)
            try fileChanges.apply(to: &spec)
            if let i = image, i != current.spec.image, flags.platform.isEmpty, !noResolveImage { spec.platforms = registryPlatforms(i) }
            spec.constraints = spec.constraints.filter { !constraintRm.contains($0) } + constraintAdd.filter { !spec.constraints.contains($0) }
            spec.placementPreferences = spec.placementPreferences.filter { !placementPrefRm.contains($0) }
                + placementPrefAdd.filter { !spec.placementPreferences.contains($0) }
            try spec.validate()
            let v = try client.request(MessageType.serviceUpdate, ServiceUpdateRequest(service: current.id, spec: spec, version: current.version, force: force),
                                       as: ServiceView.self)
            if wait { try waitConverged(client, service: v.id, timeout: bound) }
            print(v.name)
        }
    }
}

struct ServiceRm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove services (their tasks stop).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "SERVICE...") var services: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            for s in services {
                _ = try client.request(MessageType.serviceRemove, ServiceRef(service: s), as: EmptyBody.self)
                print(s)
            }
        }
    }
}

struct ServicePs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List a service's tasks: node, state, why a task is not placed and why its node was chosen.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("a"), .long("all")], help: "Also the ended tasks kept as history.") var all = false
    @Flag(name: .long("no-trunc"), help: "Do not truncate output.") var noTrunc = false
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display task IDs.") var quiet = false
    @Argument(help: "SERVICE") var service: String

    func run() throws {
        try clusterCommand {
            let tasks = try options.client().request(MessageType.servicePs, ServicePsRequest(service: service, all: all), as: TaskList.self).tasks
            if quiet { for t in tasks { print(t.id) }; return }
            var lastSlot = -1
            try options.output().print(tasks) { printTable(["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS", "PLACEMENT"], tasks.map { t in
                let name = t.slot == lastSlot ? " \\_ \(t.name)" : t.name
                lastSlot = t.slot
                let msg = noTrunc || t.message.count <= 80 ? t.message : String(t.message.prefix(79)) + "…"
                // Docker's host-mode form: "*:8080->80/tcp".
                let ports = t.state == .running ? (t.ports ?? []).map { $0.hasPrefix("0.0.0.0:") ? "*:" + $0.dropFirst(8) : $0 }.joined(separator: ", ") : ""
                return [noTrunc ? t.id : String(t.id.prefix(12)), name, t.image, t.nodeName ?? "", t.desired.rawValue.capitalized,
                        "\(t.state.rawValue.capitalized) \(since(t.updated))", msg, ports, t.placement ?? ""]
            }) }
        }
    }
}

struct ServiceLogs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Show the output of a service's tasks, or of one task, fetched from their nodes; each line prefixed with the task and its node.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("f"), .long("follow")], help: "Follow the output (new lines, new tasks) until interrupted, or until --until passes.") var follow = false
    @Option(name: [.short("n"), .long("tail")], help: "Lines from the end of each task's log (default all).") var tail = "all"
    @Flag(name: [.short("t"), .long("timestamps")], help: "Show timestamps.") var timestamps = false
    @Option(name: .long("since"), help: "Show logs since a time (2026-01-02T15:04:05Z, a Unix time) or for a duration back (10m).") var since: String?
    @Option(name: .long("until"), help: "Show logs before a time or a duration back (as --since).") var until: String?
    @Argument(help: "SERVICE|TASK (a task id, or its name as `service ps` shows it: web.2)") var service: String

    /// How often --follow asks again.
    static let followPeriod: UInt32 = 500_000

    func run() throws {
        try clusterCommand {
            var n = 0
            if tail != "all" {
                guard let v = Int(tail), v >= 0 else { throw HakoError(.failed, "invalid --tail \"\(tail)\"") }
                n = v
            }
            let from = try since.map { try TimeArgument.parse($0, flag: "--since").secondsSince1970 }
            let to = try until.map { try TimeArgument.parse($0, flag: "--until").secondsSince1970 }
            let client = try options.client()
            // --follow asks again and again from the newest line seen (the lines
            // of that instant are remembered, so none is shown twice).
            var cursor = from
            var seen = Set<String>()
            var first = true
            var warned = Set<String>()
            while true {
                let asked = Timestamp.now().secondsSince1970
                let r = try client.request(MessageType.serviceLogs, ServiceLogsRequest(service: service, tail: first ? n : 0, since: cursor, until: to),
                                           as: ServiceLogsReply.self)
                var newest = cursor ?? 0
                for e in r.entries {
                    let key = "\(e.task)|\(e.time)|\(e.stream)|\(e.text)"
                    guard !seen.contains(key) else { continue }
                    if follow { seen.insert(key) }
                    if let t = Timestamp(rfc3339: e.time)?.secondsSince1970 { newest = max(newest, t) }
                    if options.json { try printJSON(e); continue }
                    let line = "\(e.task)@\(e.node)    | \(timestamps ? e.time + " " : "")\(e.text)\n"
                    AttachSession.writeAll(e.stream == "stderr" ? 2 : 1, Array(line.utf8))
                }
                let missing = Set(r.missing).subtracting(warned)
                if !missing.isEmpty { writeStderr("hako: no logs from \(missing.sorted().joined(separator: ", ")) (not connected)\n") }
                warned.formUnion(r.missing)
                if r.truncated && first { writeStderr("hako: output cut to fit one reply; use --tail\n") }
                guard follow else { return }
                if let to, Timestamp.now().secondsSince1970 >= to { return }
                // Nothing yet: from the time of the first question on (a millisecond back, for the clock's rounding).
                cursor = max(newest, first && r.entries.isEmpty ? asked : 0) - 0.001
                // Only the lines of the last instant can come again.
                if let c = cursor { seen = seen.filter { k in
                    let parts = k.split(separator: "|", maxSplits: 2)
                    return parts.count > 1 && (Timestamp(rfc3339: String(parts[1]))?.secondsSince1970 ?? 0) >= c
                } }
                first = false
                usleep(ServiceLogs.followPeriod)
            }
        }
    }
}
