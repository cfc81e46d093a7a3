import HakoCompose
import HakoSystem

/// How a stack deploy or removal talks to the coordinator: `ClusterClient`'s
/// admin requests (tests drive a `CoordinatorCore` through the same).
public protocol AdminChannel {
    func call<B: Encodable, R: Decodable>(_ type: String, _ body: B, as: R.Type) throws -> R
}

extension ClusterClient: AdminChannel {
    public func call<B: Encodable, R: Decodable>(_ type: String, _ body: B, as: R.Type) throws -> R { try request(type, body, as: R.self) }
}

/// What a deploy does to each network of the stack, and to the networks of
/// the stack (by namespace label) that the files no longer name.
public struct StackNetworkPlan: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case create(StackNetwork)
        /// It exists as the stack's, as the files describe it: left alone.
        case unchanged(id: String)
        /// External: it exists (checked), the stack never makes or removes it.
        case external
        /// A network of the stack the files no longer name: removed after the services with `--prune`.
        case remove(id: String)
        /// The same, kept (no `--prune`).
        case keep(id: String)
    }

    public struct Entry: Sendable, Equatable {
        public var network: String
        public var action: Action
    }

    /// By network name.
    public var entries: [Entry]

    /// `existing`: every cluster network (`network ls`). Refused before
    /// anything changes: an external network that does not exist, a name
    /// taken by a network outside the stack, and a network of the stack
    /// whose subnet, attachable or labels the files changed (a cluster
    /// network cannot change; Docker's deploy leaves it as it was, silently).
    public init(stack: Stack, existing: [NetworkView], prune: Bool) throws(ClusterError) {
        var out: [Entry] = []
        let named = Set(stack.networks.map(\.name))
        for n in stack.networks {
            let have = existing.first { $0.name == n.name }
            if n.external {
                guard have != nil || StackSpecs.builtInNetworks.contains(n.name) else {
                    throw .notFound("network \(n.name) is external and does not exist (hako cluster network create \(n.name))")
                }
                out.append(Entry(network: n.name, action: .external))
                continue
            }
            guard let have else { out.append(Entry(network: n.name, action: .create(n))); continue }
            guard !have.builtIn, have.labels[Stack.namespaceLabel] == stack.name else {
                throw .conflict("network \(n.name) exists and is not part of stack \(stack.name)")
            }
            var differ: [String] = []
            if let subnet = n.subnet, subnet != have.subnet { differ.append("subnet \(have.subnet) → \(subnet)") }
            if n.attachable != have.attachable { differ.append("attachable \(have.attachable) → \(n.attachable)") }
            if n.labels != have.labels { differ.append("labels") }
            guard differ.isEmpty else {
                throw .conflict("network \(n.name) exists with other settings (\(differ.joined(separator: ", "))): a cluster network cannot change; remove the stack first, or give the network another name")
            }
            out.append(Entry(network: n.name, action: .unchanged(id: have.id)))
        }
        for n in existing where !n.builtIn && n.labels[Stack.namespaceLabel] == stack.name && !named.contains(n.name) {
            out.append(Entry(network: n.name, action: prune ? .remove(id: n.id) : .keep(id: n.id)))
        }
        entries = out.sorted { $0.network < $1.network }
    }
}

/// `stack deploy` and `stack rm` as Docker's CLI does them, over admin
/// requests: networks, secrets and configs before the services that use
/// them, and removed after the services that used them. A deploy that fails
/// half-way removes what it created (services, then networks, then secrets
/// and configs); what it updated stays updated.
public struct StackDeployment {
    public var channel: any AdminChannel
    /// Progress lines ("Creating network home_default").
    public var say: (String) -> Void
    public var warn: (String) -> Void
    /// Waits between polls of a network its services' tasks are leaving (tests move a clock).
    public var pause: (Double) -> Void
    /// How long a removal waits for the tasks of removed or updated services to leave a network.
    public var networkWait: Double = 60
    /// The platforms of an image as its registry lists them; nil: not asked (`--resolve-image never`).
    public var platforms: ((String) -> [String])?

    public init(channel: any AdminChannel, say: @escaping (String) -> Void, warn: @escaping (String) -> Void,
                pause: @escaping (Double) -> Void, platforms: ((String) -> [String])? = nil) {
        self.channel = channel
        self.say = say
        self.warn = warn
        self.pause = pause
        self.platforms = platforms
    }

    /// What this deploy made, undone when it fails.
    struct Made {
        var networks: [(name: String, id: String)] = []
        var files: [(kind: SecretKind, name: String, id: String)] = []
        var services: [(name: String, id: String)] = []
    }

    /// Brings the stack up to date; the ids of the services created or updated (what `--wait` waits for).
    public func deploy(_ stack: Stack, specs: [ServiceSpec], prune: Bool) throws -> [String] {
        let existing = try channel.call(MessageType.serviceList, EmptyBody(), as: ServiceList.self).services
        let plan = StackPlan(stack: stack.name, specs: specs,
                             existing: existing.map { StackPlan.Existing(id: $0.id, version: $0.version, spec: $0.spec) }, prune: prune)
        // Names taken outside the stack are refused before anything changes.
        let outside = Set(existing.filter { $0.spec.stackNamespace != stack.name }.map(\.name))
        for e in plan.entries {
            if case .create = e.action, outside.contains(e.service) {
                throw ClusterError.conflict("service \(e.service) exists and is not part of stack \(stack.name)")
            }
        }
        let networks = try StackNetworkPlan(stack: stack,
                                            existing: try channel.call(MessageType.networkList, EmptyBody(), as: NetworkList.self).items,
                                            prune: prune)
        let files = try filesToCreate(stack)

        var made = Made()
        var touched: [String] = []
        do {
            for e in networks.entries {
                guard case .create(let n) = e.action else { continue }
                say("Creating network \(n.name)")
                let v = try channel.call(MessageType.networkCreate,
                                         NetworkCreateRequest(name: n.name, subnet: n.subnet, attachable: n.attachable, labels: n.labels),
                                         as: NetworkView.self)
                made.networks.append((n.name, v.id))
            }
            for (kind, o, data) in files {
                say("Creating \(kind.rawValue) \(o.name)")
                let v = try channel.call(MessageType.secretCreate, SecretCreateRequest(kind: kind, name: o.name, labels: o.labels, data: data),
                                         as: SecretView.self)
                made.files.append((kind, o.name, v.id))
            }
            for e in plan.entries {
                switch e.action {
                case .create(var spec):
                    say("Creating service \(e.service)")
                    if let platforms { spec.platforms = platforms(spec.image) }
                    let v = try channel.call(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
                    made.services.append((e.service, v.id))
                    touched.append(v.id)
                case .update(let id, let version, var spec, let changed):
                    say("Updating service \(e.service) (\(changed.joined(separator: ", ")))")
                    if let platforms, spec.image != existing.first(where: { $0.id == id })?.spec.image { spec.platforms = platforms(spec.image) }
                    let v = try channel.call(MessageType.serviceUpdate, ServiceUpdateRequest(service: id, spec: spec, version: version, force: false),
                                             as: ServiceView.self)
                    touched.append(v.id)
                case .unchanged, .remove, .keep: break
                }
            }
        } catch {
            undo(made, stack: stack.name)
            throw error
        }
        // Then what the files no longer have: services, then their networks.
        for e in plan.entries {
            switch e.action {
            case .remove(let id):
                say("Removing service \(e.service)")
                _ = try channel.call(MessageType.serviceRemove, ServiceRef(service: id), as: EmptyBody.self)
            case .keep:
                warn("service \(e.service) is no longer in the files; kept (--prune removes it)")
            default: break
            }
        }
        var stuck: [String] = []
        for e in networks.entries {
            switch e.action {
            case .remove(let id):
                say("Removing network \(e.network)")
                if let why = try removeNetwork(id: id, name: e.network, stack: stack.name) { stuck.append(why) }
            case .keep:
                warn("network \(e.network) is no longer in the files; kept (--prune removes it)")
            default: break
            }
        }
        if !stuck.isEmpty { throw ClusterError.conflict(stuck.joined(separator: "; ")) }
        return touched
    }

    /// `stack rm`: the stack's services, then its networks (never an
    /// external one: only those that carry its namespace label), then its
    /// secrets and configs. False when nothing carries the stack's label.
    public func remove(stack: String) throws -> Bool {
        let services = try channel.call(MessageType.serviceList, EmptyBody(), as: ServiceList.self).services
            .filter { $0.spec.stackNamespace == stack }.sorted { $0.name < $1.name }
        let networks = try channel.call(MessageType.networkList, EmptyBody(), as: NetworkList.self).items
            .filter { !$0.builtIn && $0.labels[Stack.namespaceLabel] == stack }.sorted { $0.name < $1.name }
        var files: [(SecretKind, SecretView)] = []
        for kind in SecretKind.allCases {
            files += try channel.call(MessageType.secretList, SecretListRequest(kind: kind), as: SecretList.self).items
                .filter { $0.labels[Stack.namespaceLabel] == stack }.sorted { $0.name < $1.name }.map { (kind, $0) }
        }
        if services.isEmpty && networks.isEmpty && files.isEmpty { return false }
        for s in services {
            say("Removing service \(s.name)")
            _ = try channel.call(MessageType.serviceRemove, ServiceRef(service: s.id), as: EmptyBody.self)
        }
        var stuck: [String] = []
        for n in networks {
            say("Removing network \(n.name)")
            if let why = try removeNetwork(id: n.id, name: n.name, stack: stack) { stuck.append(why) }
        }
        for (kind, f) in files {
            say("Removing \(kind.rawValue) \(f.name)")
            _ = try channel.call(MessageType.secretRemove, SecretRef(kind: kind, ref: f.id), as: EmptyBody.self)
        }
        if !stuck.isEmpty { throw ClusterError.conflict(stuck.joined(separator: "; ")) }
        return true
    }

    /// Removes a network once no service's spec and no live task names it
    /// (the tasks of the stack's services just removed or moved off it are
    /// still stopping), polling for at most `networkWait`; at once when a
    /// service outside the stack (one without its namespace label, whatever
    /// its name) is on it. Nil when removed, else why not.
    func removeNetwork(id: String, name: String, stack: String) throws -> String? {
        let step = 0.5
        let polls = max(1, Int((networkWait / step).rounded(.up)))
        var users: [String] = []
        for i in 0...polls {
            let v: NetworkView
            do { v = try channel.call(MessageType.networkInspect, NetworkRef(ref: id), as: NetworkView.self) } catch ClusterError.wire(let code, _) where code == WireCode.notFound.rawValue {
                return nil
            }
            users = v.services
            // A name no service has any more is one of the stack's, removed and still stopping.
            let outside = users.isEmpty ? [] : Set(try channel.call(MessageType.serviceList, EmptyBody(), as: ServiceList.self).services
                .filter { $0.spec.stackNamespace != stack }.map(\.name))
            if let other = users.first(where: { outside.contains($0) }) {
                return "network \(name) is in use by service \(other), which is not part of stack \(stack): kept"
            }
            if users.isEmpty {
                _ = try channel.call(MessageType.networkRemove, NetworkRef(ref: id), as: EmptyBody.self)
                return nil
            }
            if i < polls { pause(step) }
        }
        return "network \(name) is still in use by \(users.joined(separator: ", ")) after \(GoDuration.format(networkWait)) (hako cluster network rm \(name) once its tasks have stopped)"
    }

    /// The stack's secrets and configs to create from their files. An external
    /// one must exist; one that exists is left as it is when its file holds
    /// the same data, and refused otherwise — a secret's data cannot change
    /// (Swarm's rule). Another size is another data at once; a file of the
    /// same size is sent to the coordinator (`secret.compare`), which answers
    /// only same or different: the stored data never comes back.
    func filesToCreate(_ stack: Stack) throws -> [(SecretKind, StackObject, [UInt8])] {
        var create: [(SecretKind, StackObject, [UInt8])] = []
        for (kind, objects) in [(SecretKind.secret, stack.secrets), (.config, stack.configs)] where !objects.isEmpty {
            let existing = try channel.call(MessageType.secretList, SecretListRequest(kind: kind), as: SecretList.self).items
            for o in objects {
                let have = existing.first { $0.name == o.name }
                if o.external {
                    guard have != nil else { throw ClusterError.notFound("\(kind.rawValue) \(o.name) is external and does not exist (hako cluster \(kind.rawValue) create)") }
                    continue
                }
                guard let file = o.file else { throw ClusterError.invalid("\(kind.rawValue) \(o.key) has no file") }
                let data: [UInt8]
                do { data = try FS.readFile(file) } catch { throw ClusterError.invalid("\(kind.rawValue) \(o.key): cannot read \(file): \(error)") }
                if let have {
                    var same = false
                    if have.size == data.count {
                        same = try channel.call(MessageType.secretCompare, SecretCompareRequest(kind: kind, ref: have.id, data: data),
                                                as: SecretCompareReply.self).same
                    }
                    guard same else {
                        throw ClusterError.conflict("\(kind.rawValue) \(o.name) exists with other data: a \(kind.rawValue)'s data cannot change; rotate it under a new name (e.g. `name: \(o.name)_v2` under its key in the Compose file: the services that use it roll onto the new one), or remove the stack first")
                    }
                    continue
                }
                create.append((kind, o, data))
            }
        }
        return create
    }

    /// A failed deploy's undoing, best effort: every step that fails is warned about.
    func undo(_ made: Made, stack: String) {
        for s in made.services.reversed() {
            say("Removing service \(s.name) (the deploy failed)")
            do { _ = try channel.call(MessageType.serviceRemove, ServiceRef(service: s.id), as: EmptyBody.self) } catch {
                warn("service \(s.name) could not be removed: \(error)")
            }
        }
        for n in made.networks.reversed() {
            say("Removing network \(n.name) (the deploy failed)")
            do {
                if let why = try removeNetwork(id: n.id, name: n.name, stack: stack) { warn(why) }
            } catch { warn("network \(n.name) could not be removed: \(error)") }
        }
        for f in made.files.reversed() {
            say("Removing \(f.kind.rawValue) \(f.name) (the deploy failed)")
            do { _ = try channel.call(MessageType.secretRemove, SecretRef(kind: f.kind, ref: f.id), as: EmptyBody.self) } catch {
                warn("\(f.kind.rawValue) \(f.name) could not be removed: \(error)")
            }
        }
    }
}
