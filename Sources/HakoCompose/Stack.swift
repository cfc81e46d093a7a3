/// A stack as the cluster would run it: a loaded Compose project translated
/// into services named STACK_SERVICE and the volumes, networks, secrets and
/// configs they use under their real names. Pure: nothing here talks to the
/// coordinator (docs/compose.md says which fields today's `ServiceSpec` carries).
public struct Stack: Sendable, Equatable {
    public var name: String
    /// By name.
    public var services: [StackService]
    public var volumes: [StackObject]
    public var networks: [StackNetwork]
    public var secrets: [StackObject]
    public var configs: [StackObject]

    /// The label Docker puts on everything a stack creates; a stack's services are found by it.
    public static let namespaceLabel = "com.docker.stack.namespace"
    public static let imageLabel = "com.docker.stack.image"
}

/// A network of a stack: a cluster network (Swarm's overlay), made by the
/// deploy unless external, with the stack's namespace label.
public struct StackNetwork: Sendable, Equatable {
    /// The real name: STACK_KEY, or `name:` when given, or the key when external.
    public var name: String
    /// The key in the Compose file ("default" for the stack's default network).
    public var key: String
    /// Made outside the stack: it must exist, and the stack never removes it.
    public var external: Bool
    public var attachable: Bool
    /// With the stack's namespace label (none when external).
    public var labels: [String: String]
    /// nil: the coordinator's pool.
    public var subnet: String?
}

/// A volume, secret or config of a stack.
public struct StackObject: Sendable, Equatable {
    /// The real name: STACK_KEY, or `name:` when given, or the key when external.
    public var name: String
    /// The key in the Compose file.
    public var key: String
    public var external: Bool
    public var driver: String?
    public var options: [String: String]
    public var labels: [String: String]
    /// A secret's or config's content, resolved against the project directory.
    public var file: String?
}

public struct StackMount: Sendable, Equatable {
    public var type: ComposeMount.Kind
    /// The real volume name (STACK_KEY) or the host path; nil: anonymous volume or tmpfs.
    public var source: String?
    public var target: String
    public var readOnly: Bool
    public var propagation: String?
    public var noCopy: Bool
    public var tmpfsSize: Int64?
}

public struct StackFile: Sendable, Equatable {
    /// The real secret or config name.
    public var name: String
    /// A secret: the path (/run/secrets/TARGET); a config: its path (default /SOURCE).
    public var target: String
    public var uid: String
    public var gid: String
    public var mode: UInt32
}

/// What one service of a stack is, in the terms the cluster will need.
public struct StackService: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        case replicated(Int)
        case global
        case replicatedJob(Int)
        case globalJob
    }

    public struct Port: Sendable, Equatable {
        public var target: Int
        public var published: Int?
        public var proto: String
        public var mode: ComposePort.Mode
        public var hostIP: String?
    }

    public struct UpdatePolicy: Sendable, Equatable {
        public var parallelism: Int
        public var delay: Double
        public var failureAction: ComposeUpdateConfig.FailureAction
        public var monitor: Double
        public var maxFailureRatio: Double
        public var order: ComposeUpdateConfig.Order
    }

    /// STACK_SERVICE.
    public var name: String
    public var image: String
    public var command: [String]?
    public var entrypoint: [String]?
    /// KEY=VALUE, sorted.
    public var env: [String]
    public var workdir: String?
    public var user: String?
    public var hostname: String?
    /// Service labels, with the stack's namespace label.
    public var labels: [String: String]
    /// Container labels, with the stack's namespace label.
    public var containerLabels: [String: String]
    public var mode: Mode
    public var limitCPUMillis: Int64
    public var limitMemory: Int64
    public var limitPids: Int
    public var reserveCPUMillis: Int64
    public var reserveMemory: Int64
    public var ports: [Port]
    public var constraints: [String]
    public var preferences: [String]
    public var maxReplicasPerNode: Int
    public var restartCondition: ComposeRestartPolicy.Condition
    public var restartDelay: Double
    /// 0: no limit.
    public var restartMaxAttempts: Int
    public var restartWindow: Double
    public var update: UpdatePolicy
    public var rollback: UpdatePolicy
    public var stopSignal: String?
    public var stopGracePeriod: Double?
    /// Real network names and each one's aliases (the service's own name always among them).
    public var networks: [String: [String]]
    public var mounts: [StackMount]
    public var devices: [ComposeDevice]
    public var secrets: [StackFile]
    public var configs: [StackFile]
    public var healthcheck: ComposeHealthcheck?
    public var initProcess: Bool
    public var readOnly: Bool
    public var sysctls: [String: String]
    public var capAdd: [String]
    public var capDrop: [String]
    public var dns: [String]
    public var dnsSearch: [String]
}

extension Stack {
    /// The stack `name` of a loaded project. Names are Docker's: a service
    /// `web` of stack `home` is `home_web`, and so are volumes, networks,
    /// secrets and configs that are not external and have no `name:`.
    public static func translate(_ p: ComposeProject, name: String) throws(ComposeError) -> Stack {
        guard isValidStackName(name) else {
            throw ComposeError(file: "", line: nil, "invalid stack name \"\(name)\": letters, digits, '-' and '.', starting with a letter or digit")
        }
        func objects(_ list: [String: ComposeObject]) -> [StackObject] {
            list.keys.sorted().compactMap { k in
                guard let o = list[k] else { return nil }
                return StackObject(name: realName(stack: name, key: k, name: o.name, external: o.external), key: k, external: o.external,
                                   driver: nil, options: [:], labels: o.external ? [:] : o.labels.merging([namespaceLabel: name]) { a, _ in a },
                                   file: o.file)
            }
        }
        let volumes = p.volumes.keys.sorted().compactMap { k -> StackObject? in
            guard let v = p.volumes[k] else { return nil }
            return StackObject(name: realName(stack: name, key: k, name: v.name, external: v.external), key: k, external: v.external,
                               driver: v.driver, options: v.driverOpts,
                               labels: v.external ? [:] : v.labels.merging([namespaceLabel: name]) { a, _ in a }, file: nil)
        }
        // As Docker's: only the networks some service is on (a declared one no
        // service names is not made), the default one when a service names none.
        let used = Set(p.services.values.flatMap { $0.networks.isEmpty ? ["default"] : Array($0.networks.keys) })
        var networkKeys = p.networks.filter { used.contains($0.key) }
        if used.contains("default") && networkKeys["default"] == nil { networkKeys["default"] = ComposeNetwork() }
        let networks = networkKeys.keys.sorted().compactMap { k -> StackNetwork? in
            guard let n = networkKeys[k] else { return nil }
            return StackNetwork(name: realName(stack: name, key: k, name: n.name, external: n.external), key: k, external: n.external,
                                attachable: n.attachable,
                                labels: n.external ? [:] : n.labels.merging([namespaceLabel: name]) { _, ns in ns }, subnet: n.subnet)
        }
        let secrets = objects(p.secrets), configs = objects(p.configs)
        let real: (([StackObject], String) -> String) = { list, key in list.first { $0.key == key }?.name ?? key }
        let realNetwork: (String) -> String = { key in networks.first { $0.key == key }?.name ?? key }
        var services: [StackService] = []
        for key in p.serviceNames {
            guard let s = p.services[key] else { continue }
            let full = "\(name)_\(key)"
            guard full.count <= 63 else { throw ComposeError(file: "", line: nil, "service name \"\(full)\" is longer than 63 characters") }
            services.append(try service(s, fullName: full, stack: name,
                                        volume: { real(volumes, $0) }, network: realNetwork,
                                        secret: { real(secrets, $0) }, config: { real(configs, $0) }))
        }
        return Stack(name: name, services: services, volumes: volumes, networks: networks, secrets: secrets, configs: configs)
    }

    static func isValidStackName(_ s: String) -> Bool {
        guard let f = s.unicodeScalars.first, isAlnum(f), s.count <= 40 else { return false }
        return s.unicodeScalars.allSatisfy { isAlnum($0) || $0 == "-" || $0 == "." }
    }

    static func isAlnum(_ c: Unicode.Scalar) -> Bool { (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") }

    static func realName(stack: String, key: String, name: String?, external: Bool) -> String {
        if let name { return name }
        return external ? key : "\(stack)_\(key)"
    }

    static func service(_ s: ComposeService, fullName: String, stack: String,
                        volume: (String) -> String, network: (String) -> String,
                        secret: (String) -> String, config: (String) -> String) throws(ComposeError) -> StackService {
        let d = s.deploy
        let mode: StackService.Mode
        switch d.mode ?? .replicated {
        case .replicated: mode = .replicated(d.replicas ?? 1)
        case .replicatedJob: mode = .replicatedJob(d.replicas ?? 1)
        case .global: mode = .global
        case .globalJob: mode = .globalJob
        }
        func policy(_ u: ComposeUpdateConfig) -> StackService.UpdatePolicy {
            // Swarm's defaults, the same for updates and rollbacks.
            StackService.UpdatePolicy(parallelism: u.parallelism ?? 1, delay: u.delay ?? 0,
                                      failureAction: u.failureAction ?? .pause, monitor: u.monitor ?? 5,
                                      maxFailureRatio: u.maxFailureRatio ?? 0, order: u.order ?? .stopFirst)
        }
        var networks: [String: [String]] = [:]
        let nets = s.networks.isEmpty ? ["default": []] : s.networks
        for (k, aliases) in nets { networks[network(k)] = ([s.name] + aliases.filter { $0 != s.name }) }
        let image = s.image ?? ""
        return StackService(
            name: fullName, image: image, command: s.command, entrypoint: s.entrypoint,
            env: s.environment.map { "\($0.key)=\($0.value)" }.sorted(),
            workdir: s.workingDir, user: s.user, hostname: s.hostname,
            labels: d.labels.merging([Stack.namespaceLabel: stack, Stack.imageLabel: image]) { _, ns in ns },
            containerLabels: s.labels.merging([Stack.namespaceLabel: stack]) { _, ns in ns },
            mode: mode,
            limitCPUMillis: Int64(((d.limits.cpus ?? 0) * 1000).rounded()), limitMemory: d.limits.memory ?? 0, limitPids: d.limits.pids ?? 0,
            reserveCPUMillis: Int64(((d.reservations.cpus ?? 0) * 1000).rounded()), reserveMemory: d.reservations.memory ?? 0,
            ports: s.ports.map { StackService.Port(target: $0.target, published: $0.published, proto: $0.proto, mode: $0.mode, hostIP: $0.hostIP) },
            constraints: d.constraints, preferences: d.preferences, maxReplicasPerNode: d.maxReplicasPerNode ?? 0,
            restartCondition: d.restartPolicy.condition ?? .any, restartDelay: d.restartPolicy.delay ?? 5,
            restartMaxAttempts: d.restartPolicy.maxAttempts ?? 0, restartWindow: d.restartPolicy.window ?? 0,
            update: policy(d.updateConfig), rollback: policy(d.rollbackConfig),
            stopSignal: s.stopSignal, stopGracePeriod: s.stopGracePeriod,
            networks: networks,
            mounts: s.volumes.map { m in
                StackMount(type: m.type, source: m.type == .volume ? m.source.map(volume) : m.source, target: m.target,
                           readOnly: m.readOnly, propagation: m.propagation, noCopy: m.noCopy, tmpfsSize: m.tmpfsSize)
            },
            devices: s.devices,
            secrets: s.secrets.map { r in
                let t = r.target ?? r.source
                return StackFile(name: secret(r.source), target: t.hasPrefix("/") ? t : "/run/secrets/" + t,
                                 uid: r.uid ?? "0", gid: r.gid ?? "0", mode: r.mode ?? 0o444)
            },
            configs: s.configs.map { r in
                StackFile(name: config(r.source), target: r.target ?? "/" + r.source, uid: r.uid ?? "0", gid: r.gid ?? "0", mode: r.mode ?? 0o444)
            },
            healthcheck: s.healthcheck, initProcess: s.initProcess ?? false, readOnly: s.readOnly ?? false,
            sysctls: s.sysctls, capAdd: s.capAdd, capDrop: s.capDrop, dns: s.dns, dnsSearch: s.dnsSearch)
    }
}
