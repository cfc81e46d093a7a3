/// `docker stack deploy -c base.yml -c override.yml`: the override merged
/// over the base, as Docker's loader merges them (docs/compose.md). Per
/// service: a value the override sets replaces the base's, one it does not set
/// leaves it; maps (environment, labels, sysctls, networks, deploy.labels)
/// merge by key; ports merge by published port and protocol (a port without
/// one by all its fields), volumes by target, secrets and configs by source,
/// the override's entry replacing the base's; other lists (cap_add, devices,
/// dns, constraints, preferences) are appended; command and entrypoint are
/// replaced whole. Top-level volumes, networks, secrets and configs are
/// replaced by name.
extension ComposeProject {
    public func merged(with o: ComposeProject) -> ComposeProject {
        var p = self
        p.version = o.version ?? version
        for (name, s) in o.services { p.services[name] = services[name].map { $0.merged(with: s) } ?? s }
        p.volumes.merge(o.volumes) { _, new in new }
        p.networks.merge(o.networks) { _, new in new }
        p.secrets.merge(o.secrets) { _, new in new }
        p.configs.merge(o.configs) { _, new in new }
        p.extensions.merge(o.extensions) { _, new in new }
        return p
    }
}

func mergeByKey<T, K: Hashable>(_ base: [T], _ over: [T], key: (T) -> K) -> [T] {
    var out = base
    for e in over {
        if let i = out.firstIndex(where: { key($0) == key(e) }) { out[i] = e } else { out.append(e) }
    }
    return out
}

extension ComposeService {
    func merged(with o: ComposeService) -> ComposeService {
        var s = self
        s.image = o.image ?? image
        s.command = o.command ?? command
        s.entrypoint = o.entrypoint ?? entrypoint
        s.environment.merge(o.environment) { _, new in new }
        s.envFiles += o.envFiles
        // A published port is published once: the override's entry for it replaces the base's.
        s.ports = mergeByKey(ports, o.ports) { p in p.published.map { "\($0)/\(p.proto)" } ?? "-/\(p.target)/\(p.proto)/\(p.mode)" }
        s.volumes = mergeByKey(volumes, o.volumes) { $0.target }
        s.networks.merge(o.networks) { _, new in new }
        s.secrets = mergeByKey(secrets, o.secrets) { $0.source }
        s.configs = mergeByKey(configs, o.configs) { $0.source }
        if let h = o.healthcheck { s.healthcheck = healthcheck.map { $0.merged(with: h) } ?? h }
        s.labels.merge(o.labels) { _, new in new }
        s.user = o.user ?? user
        s.workingDir = o.workingDir ?? workingDir
        s.hostname = o.hostname ?? hostname
        s.initProcess = o.initProcess ?? initProcess
        s.readOnly = o.readOnly ?? readOnly
        s.stopGracePeriod = o.stopGracePeriod ?? stopGracePeriod
        s.stopSignal = o.stopSignal ?? stopSignal
        s.sysctls.merge(o.sysctls) { _, new in new }
        s.devices += o.devices
        s.capAdd += o.capAdd
        s.capDrop += o.capDrop
        s.dns += o.dns
        s.dnsSearch += o.dnsSearch
        s.deploy = deploy.merged(with: o.deploy)
        return s
    }
}

extension ComposeHealthcheck {
    func merged(with o: ComposeHealthcheck) -> ComposeHealthcheck {
        var h = self
        h.test = o.test ?? test
        h.interval = o.interval ?? interval
        h.timeout = o.timeout ?? timeout
        h.startPeriod = o.startPeriod ?? startPeriod
        h.startInterval = o.startInterval ?? startInterval
        h.retries = o.retries ?? retries
        h.disable = o.disable || disable
        return h
    }
}

extension ComposeDeploy {
    func merged(with o: ComposeDeploy) -> ComposeDeploy {
        var d = self
        d.mode = o.mode ?? mode
        d.replicas = o.replicas ?? replicas
        d.labels.merge(o.labels) { _, new in new }
        d.constraints += o.constraints
        d.preferences += o.preferences
        d.maxReplicasPerNode = o.maxReplicasPerNode ?? maxReplicasPerNode
        d.limits = limits.merged(with: o.limits)
        d.reservations = reservations.merged(with: o.reservations)
        d.restartPolicy.condition = o.restartPolicy.condition ?? restartPolicy.condition
        d.restartPolicy.delay = o.restartPolicy.delay ?? restartPolicy.delay
        d.restartPolicy.maxAttempts = o.restartPolicy.maxAttempts ?? restartPolicy.maxAttempts
        d.restartPolicy.window = o.restartPolicy.window ?? restartPolicy.window
        d.updateConfig = updateConfig.merged(with: o.updateConfig)
        d.rollbackConfig = rollbackConfig.merged(with: o.rollbackConfig)
        return d
    }
}

extension ComposeResources {
    func merged(with o: ComposeResources) -> ComposeResources {
        var r = self
        r.cpus = o.cpus ?? cpus
        r.memory = o.memory ?? memory
        r.pids = o.pids ?? pids
        return r
    }
}

extension ComposeUpdateConfig {
    func merged(with o: ComposeUpdateConfig) -> ComposeUpdateConfig {
        var u = self
        u.parallelism = o.parallelism ?? parallelism
        u.delay = o.delay ?? delay
        u.failureAction = o.failureAction ?? failureAction
        u.monitor = o.monitor ?? monitor
        u.maxFailureRatio = o.maxFailureRatio ?? maxFailureRatio
        u.order = o.order ?? order
        return u
    }
}
