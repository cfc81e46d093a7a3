import HakoCompose
import HakoImage
import HakoSystem

/// A Compose stack (`HakoCompose.Stack`) as cluster services: each
/// `StackService` turned into the `ServiceSpec` the coordinator takes, and
/// a deploy planned as Docker's `stack deploy` does it, on the client's side:
/// services of the stack (found by the namespace label) that are unchanged
/// are left alone, changed ones updated (their tasks roll), new ones
/// created, and ones the files no longer have removed with `--prune`.
public enum StackSpecs {
    /// The services' specs and warnings about what hako applies differently.
    /// What it cannot run is an error naming the service (or network) and
    /// the Compose key.
    public static func specs(_ stack: Stack) throws(ClusterError) -> (specs: [ServiceSpec], warnings: [String]) {
        var warnings: [String] = []
        let volumes = Dictionary(stack.volumes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for v in stack.volumes where !v.external {
            if let d = v.driver, d != "local" { throw .invalid("volume \(v.key): driver \(d): the cluster's volumes are local to each node (driver local)") }
            if !v.options.isEmpty { throw .invalid("volume \(v.key): driver_opts are not supported by the cluster yet") }
        }
        for n in stack.networks where !n.external {
            do { try NetworkRecord.validate(name: n.name, labels: n.labels) } catch { throw .invalid("network \(n.key): \(error.description)") }
        }
        let external = Set(stack.networks.filter(\.external).map(\.name))
        var out: [ServiceSpec] = []
        for s in stack.services {
            var w: [String] = []
            out.append(try spec(s, stack: stack.name, volumes: volumes, externalNetworks: external, warnings: &w))
            warnings += w.map { "service \(s.name): \($0)" }
        }
        return (out, warnings)
    }

    /// The built-in networks an external network of a stack may name
    /// (Docker's `external: true` network `host`): each only alone.
    static let builtInNetworks: Set<String> = [ServiceSpec.clusterNetwork, "host", "none"]

    static func spec(_ s: StackService, stack: String, volumes: [String: StackObject], externalNetworks: Set<String>,
                     warnings: inout [String]) throws(ClusterError) -> ServiceSpec {
        func refuse(_ key: String, _ why: String) -> ClusterError { .invalid("service \(s.name): \(key): \(why)") }
        var spec = ServiceSpec(name: s.name, image: s.image)
        spec.command = s.command
        // Docker's: an entrypoint clears the image's command; its arguments come before the service's command.
        if let e = s.entrypoint {
            spec.entrypoint = e.first ?? ""
            if e.count > 1 { spec.command = Array(e.dropFirst()) + (s.command ?? []) }
        }
        spec.env = s.env
        spec.workdir = s.workdir
        spec.user = s.user
        spec.serviceLabels = s.labels
        spec.labels = s.containerLabels
        switch s.mode {
        case .replicated(let n): spec.mode = .replicated; spec.replicas = n
        case .replicatedJob(let n): spec.mode = .replicatedJob; spec.replicas = n
        case .global: spec.mode = .global
        case .globalJob: spec.mode = .globalJob
        }
        spec.limits = Resources(cpuMillis: s.limitCPUMillis, memory: s.limitMemory)
        spec.reservations = Resources(cpuMillis: s.reserveCPUMillis, memory: s.reserveMemory)
        spec.container.pidsLimit = s.limitPids
        for p in s.ports {
            switch p.mode {
            case .ingress:
                guard let published = p.published else { throw refuse("ports", "\(p.target)/\(p.proto) has no published port (the routing mesh needs one)") }
                guard p.hostIP == nil else { throw refuse("ports", "the routing mesh answers on every address: no host IP (\(p.hostIP ?? "")) for \(published)") }
                spec.ingress.append("\(published):\(p.target)/\(p.proto)")
            case .host:
                spec.ports.append((p.hostIP.map { $0 + ":" } ?? "") + (p.published.map { "\($0):" } ?? "") + "\(p.target)/\(p.proto)")
            }
        }
        spec.constraints = s.constraints
        spec.placementPreferences = s.preferences.map { "spread=" + $0 }
        spec.maxReplicasPerNode = s.maxReplicasPerNode
        switch s.restartCondition {
        case .any: spec.restartCondition = .any
        case .onFailure: spec.restartCondition = .onFailure
        case .none: spec.restartCondition = .none
        }
        spec.restartDelay = s.restartDelay
        spec.restartMaxAttempts = s.restartMaxAttempts
        spec.restartWindow = s.restartWindow
        spec.update = try updateConfig(s.update, "update_config", service: s.name)
        spec.rollback = try updateConfig(s.rollback, "rollback_config", service: s.name)
        spec.stopSignal = s.stopSignal
        spec.stopTimeout = s.stopGracePeriod.map { Int($0.rounded(.up)) }
        // Its networks with their aliases (its short name first: how the
        // stack's services find each other), or one built-in network alone.
        let names = s.networks.keys.sorted()
        if let b = names.first(where: { builtInNetworks.contains($0) && externalNetworks.contains($0) }) {
            guard names.count == 1 else { throw refuse("networks", "\(b) is a built-in network: a service is on it alone") }
            spec.network = b
        } else {
            spec.networks = names.map { NetworkAttachment(target: $0, aliases: s.networks[$0] ?? []) }
        }
        spec.secrets = try s.secrets.map { f throws(ClusterError) in try fileReference(f, key: "secrets", refuse) }
        spec.configs = try s.configs.map { f throws(ClusterError) in try fileReference(f, key: "configs", refuse) }
        spec.container.mounts = try s.mounts.map { m throws(ClusterError) -> ServiceMount in
            var out: ServiceMount
            switch m.type {
            case .volume:
                if let v = m.source.flatMap({ volumes[$0] }), v.external == false, v.driver.map({ $0 != "local" }) ?? false {
                    throw refuse("volumes", "volume \(v.key) is not local")
                }
                out = ServiceMount(type: .volume, source: m.source, target: m.target, readOnly: m.readOnly)
                out.noCopy = m.noCopy
            case .bind:
                out = ServiceMount(type: .bind, source: m.source, target: m.target, readOnly: m.readOnly)
                out.propagation = m.propagation
            case .tmpfs:
                out = ServiceMount(type: .tmpfs, source: nil, target: m.target, readOnly: m.readOnly)
                out.tmpfsSize = m.tmpfsSize ?? 0
            }
            do { try out.validate() } catch { throw refuse("volumes", "\(m.target): \(error)") }
            return out
        }
        spec.container.devices = s.devices.map { ServiceDevice(host: $0.host, container: $0.container, permissions: $0.permissions) }
        spec.container.hostname = s.hostname
        spec.container.initProcess = s.initProcess
        spec.container.readOnly = s.readOnly
        spec.container.sysctls = s.sysctls
        spec.container.capAdd = s.capAdd
        spec.container.capDrop = s.capDrop
        spec.container.dns = s.dns
        spec.container.dnsSearch = s.dnsSearch
        if let h = s.healthcheck { spec.healthCheck = try healthCheck(h, service: s.name) }
        do { try spec.validate() } catch { throw .invalid("service \(s.name): \(error.description)") }
        return spec
    }

    /// Compose's `healthcheck` as the cluster's (`--health-*`): `disable` or
    /// a test of NONE turns the image's check off.
    static func healthCheck(_ h: ComposeHealthcheck, service: String) throws(ClusterError) -> HealthCheck {
        if h.disable { return HealthCheck(test: .none) }
        let test: HealthCheck.Test
        do { test = try HealthCheck.test(fromList: h.test ?? []) } catch { throw .invalid("service \(service): healthcheck.test: \(error.description)") }
        func d(_ s: Double?) -> Duration { s.map { Duration.milliseconds(Int64(($0 * 1000).rounded())) } ?? .zero }
        return HealthCheck(test: test, interval: d(h.interval), timeout: d(h.timeout), startPeriod: d(h.startPeriod),
                           startInterval: d(h.startInterval), retries: h.retries ?? 0)
    }
}

/// What a deploy does to each service.
public struct StackPlan: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case create(ServiceSpec)
        /// The existing service's id and version, the new spec, the names of the fields that differ.
        case update(id: String, version: Int, spec: ServiceSpec, changed: [String])
        case unchanged(id: String)
        case remove(id: String)
        /// A service of the stack the files no longer have, kept (no `--prune`).
        case keep(id: String)
    }

    public struct Entry: Sendable, Equatable {
        public var service: String
        public var action: Action
    }

    /// By service name.
    public var entries: [Entry]

    /// A service as it exists (`ServiceView`'s id, version and spec).
    public struct Existing: Sendable {
        public var id: String
        public var version: Int
        public var spec: ServiceSpec
        public init(id: String, version: Int, spec: ServiceSpec) { self.id = id; self.version = version; self.spec = spec }
    }

    /// `existing`: every service; only those of `stack` take part. A spec
    /// whose image is the existing one's takes the platforms resolved when
    /// it was created (what the deploy does not ask the registry again).
    public init(stack: String, specs: [ServiceSpec], existing: [Existing], prune: Bool) {
        var mine: [String: Existing] = [:]
        for e in existing where e.spec.stackNamespace == stack { mine[e.spec.name] = e }
        var out: [Entry] = []
        for var s in specs {
            guard let old = mine.removeValue(forKey: s.name) else { out.append(Entry(service: s.name, action: .create(s))); continue }
            if s.image == old.spec.image && s.platforms.isEmpty { s.platforms = old.spec.platforms }
            // The coordinator binds a reference to its secret's id; by name, the files' references are the same ones.
            func bound(_ refs: [SecretReference], _ held: [SecretReference]) -> [SecretReference] {
                refs.map { r in var r = r; r.id = held.first { $0.source == r.source }?.id ?? r.id; return r }
            }
            s.secrets = bound(s.secrets, old.spec.secrets)
            s.configs = bound(s.configs, old.spec.configs)
            // Networks likewise: by name, the files' networks are the ones the service is bound to.
            s.networks = s.networks.map { a in var a = a; a.id = old.spec.networks.first { $0.target == a.target }?.id ?? a.id; return a }
            if s == old.spec {
                out.append(Entry(service: s.name, action: .unchanged(id: old.id)))
            } else {
                out.append(Entry(service: s.name, action: .update(id: old.id, version: old.version, spec: s, changed: StackPlan.changedFields(old.spec, s))))
            }
        }
        for (name, e) in mine { out.append(Entry(service: name, action: prune ? .remove(id: e.id) : .keep(id: e.id))) }
        entries = out.sorted { $0.service < $1.service }
    }

    /// The spec's JSON keys whose values differ ("container.mounts" for a nested one).
    static func changedFields(_ a: ServiceSpec, _ b: ServiceSpec) -> [String] {
        guard let x = try? JSON.parse(Wire.encodeJSON(a)), let y = try? JSON.parse(Wire.encodeJSON(b)) else { return ["spec"] }
        func diff(_ x: JSON?, _ y: JSON?, _ prefix: String) -> [String] {
            if let mx = x?.members, let my = y?.members {
                let keys = Set(mx.map(\.0)).union(my.map(\.0))
                return keys.sorted().flatMap { k in diff(x?[k], y?[k], prefix.isEmpty ? k : "\(prefix).\(k)") }
            }
            return x == y ? [] : [prefix]
        }
        let d = diff(x, y, "")
        return d.isEmpty ? ["spec"] : d
    }
}

/// Compose's `update_config`/`rollback_config` as the cluster's (Swarm's) update config.
private func updateConfig(_ u: StackService.UpdatePolicy, _ key: String, service: String) throws(ClusterError) -> UpdateConfig {
    var c = UpdateConfig()
    c.parallelism = u.parallelism
    c.delay = u.delay
    c.monitor = u.monitor
    c.maxFailureRatio = u.maxFailureRatio
    c.order = u.order == .startFirst ? .startFirst : .stopFirst
    switch u.failureAction {
    case .pause: c.failureAction = .pause
    case .continue: c.failureAction = .continue
    case .rollback:
        guard key == "update_config" else { throw .invalid("service \(service): deploy.\(key).failure_action: a rollback's failure action is pause or continue") }
        c.failureAction = .rollback
    }
    return c
}

/// A service's use of a stack's secret or config: the real name, the path (absolute already), numeric owners.
private func fileReference(_ f: StackFile, key: String, _ refuse: (String, String) -> ClusterError) throws(ClusterError) -> SecretReference {
    guard let uid = UInt32(f.uid), let gid = UInt32(f.gid) else {
        throw refuse(key, "\(f.name): uid and gid must be numbers (\(f.uid), \(f.gid))")
    }
    return SecretReference(source: f.name, target: f.target, uid: uid, gid: gid, mode: f.mode)
}
