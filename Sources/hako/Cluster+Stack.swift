import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoCluster
import HakoCompose
import HakoSystem

struct ClusterStack: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stack", abstract: "Manage stacks: the services of Compose files, named STACK_SERVICE (docker stack's).",
        subcommands: [StackDeploy.self, StackLs.self, StackServices.self, StackPs.self, StackRm.self])
}

/// The services of one stack: those with its namespace label.
func stackServices(_ client: ClusterClient, _ stack: String) throws -> [ServiceView] {
    try client.request(MessageType.serviceList, EmptyBody(), as: ServiceList.self).services.filter { $0.spec.stackNamespace == stack }
}

/// The process environment, which `${VAR}` in a Compose file reads (over the project's `.env`).
func processEnvironment() -> [String: String] {
    var out: [String: String] = [:]
    var p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
    while let cur = p, let entry = cur.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p = cur + 1
    }
    return out
}

struct StackDeploy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy", abstract: "Deploy a stack from Compose files, or bring it up to date: unchanged services are left alone, changed ones updated, new ones created.")
    @OptionGroup var options: ClusterOptions
    @Option(name: [.short("c"), .long("compose-file")], help: "Compose file (repeat for overrides, merged in order; - is not accepted).") var files: [String] = []
    @Flag(name: .long("prune"), help: "Remove the stack's services the files no longer have.") var prune = false
    @Option(name: .long("resolve-image"), help: "Ask the registry for new images' platforms: always, changed (the same: images already deployed keep theirs) or never.") var resolveImage = "always"
    @Flag(name: .long("wait"), help: "Wait until every created or updated service runs.") var wait = false
    @Option(name: .long("timeout"), help: "Bound for --wait (default 5m).") var timeout = "5m"
    @Argument(help: "STACK") var stack: String

    func run() throws {
        try clusterCommand {
            guard !files.isEmpty else { throw ValidationError("\"stack deploy\" requires at least one --compose-file") }
            guard ["always", "changed", "never"].contains(resolveImage) else { throw HakoError(.failed, "invalid --resolve-image \"\(resolveImage)\": always, changed or never") }
            guard let bound = Durations.parse(timeout) else { throw HakoError(.failed, "invalid --timeout \"\(timeout)\"") }
            let load: ComposeLoad, translated: Stack
            do {
                load = try ComposeLoader.load(files: files, environment: processEnvironment())
                translated = try Stack.translate(load.project, name: stack)
            } catch { throw HakoError(.failed, "\(error)") }
            for i in load.ignored { writeStderr("warning: \(i)\n") }
            for v in load.unsetVariables { writeStderr("warning: the \(v) variable is not set; it is a blank string\n") }
            let (specs, warnings) = try StackSpecs.specs(translated)
            for w in warnings { writeStderr("warning: \(w)\n") }
            let client = try options.client()
            let existing = try client.request(MessageType.serviceList, EmptyBody(), as: ServiceList.self).services
            let plan = StackPlan(stack: stack, specs: specs, existing: existing.map { StackPlan.Existing(id: $0.id, version: $0.version, spec: $0.spec) },
                                 prune: prune)
            // Names taken by services outside the stack are refused before anything changes.
            let outside = Set(existing.filter { $0.spec.stackNamespace != stack }.map(\.name))
            for e in plan.entries {
                if case .create = e.action, outside.contains(e.service) {
                    throw HakoError(.failed, "service \(e.service) exists and is not part of stack \(stack)")
                }
            }
            try createFiles(client, translated)
            var touched: [String] = []
            for e in plan.entries {
                switch e.action {
                case .create(var spec):
                    print("Creating service \(e.service)")
                    if resolveImage != "never" { spec.platforms = registryPlatforms(spec.image) }
                    let v = try client.request(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
                    touched.append(v.id)
                case .update(let id, let version, var spec, let changed):
                    print("Updating service \(e.service) (\(changed.joined(separator: ", ")))")
                    let old = existing.first { $0.id == id }
                    if resolveImage != "never", spec.image != old?.spec.image { spec.platforms = registryPlatforms(spec.image) }
                    let v = try client.request(MessageType.serviceUpdate, ServiceUpdateRequest(service: id, spec: spec, version: version, force: false),
                                               as: ServiceView.self)
                    touched.append(v.id)
                case .unchanged: break
                case .remove(let id):
                    print("Removing service \(e.service)")
                    _ = try client.request(MessageType.serviceRemove, ServiceRef(service: id), as: EmptyBody.self)
                case .keep:
                    writeStderr("warning: service \(e.service) is no longer in the files; kept (--prune removes it)\n")
                }
            }
            if wait { for id in touched { try waitConverged(client, service: id, timeout: bound) } }
        }
    }
}

/// The stack's secrets and configs, before its services: an external one must
/// exist; another is created from its file (labelled with the stack), or left
/// as it is when it exists with the same size — data cannot change (Swarm's
/// rule), so a different size is an error naming it.
func createFiles(_ client: ClusterClient, _ stack: Stack) throws {
    for (kind, objects) in [(SecretKind.secret, stack.secrets), (.config, stack.configs)] where !objects.isEmpty {
        let existing = try client.request(MessageType.secretList, SecretListRequest(kind: kind), as: SecretList.self).items
        var create: [(StackObject, [UInt8])] = []
        for o in objects {
            let have = existing.first { $0.name == o.name }
            if o.external {
                guard have != nil else { throw HakoError(.failed, "\(kind.rawValue) \(o.name) is external and does not exist (hako cluster \(kind.rawValue) create)") }
                continue
            }
            guard let file = o.file else { throw HakoError(.failed, "\(kind.rawValue) \(o.key) has no file") }
            let data: [UInt8]
            do { data = try FS.readFile(file) } catch { throw HakoError(.failed, "\(kind.rawValue) \(o.key): cannot read \(file): \(error)") }
            if let have {
                guard have.size == data.count else {
                    throw HakoError(.failed, "\(kind.rawValue) \(o.name) exists with other data: a \(kind.rawValue)'s data cannot change; give it a new name (or remove the stack first)")
                }
                continue
            }
            create.append((o, data))
        }
        for (o, data) in create {
            print("Creating \(kind.rawValue) \(o.name)")
            _ = try client.request(MessageType.secretCreate, SecretCreateRequest(kind: kind, name: o.name, labels: o.labels, data: data), as: SecretView.self)
        }
    }
}

struct StackRow: Codable {
    var name: String
    var services: Int
}

struct StackLs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List stacks.")
    @OptionGroup var options: ClusterOptions

    func run() throws {
        try clusterCommand {
            let list = try options.client().request(MessageType.serviceList, EmptyBody(), as: ServiceList.self).services
            var counts: [String: Int] = [:]
            for s in list { if let ns = s.spec.stackNamespace { counts[ns, default: 0] += 1 } }
            let rows = counts.keys.sorted().map { StackRow(name: $0, services: counts[$0] ?? 0) }
            try options.output().print(rows) { printTable(["NAME", "SERVICES"], rows.map { [$0.name, String($0.services)] }) }
        }
    }
}

struct StackServices: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "services", abstract: "List a stack's services.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display IDs.") var quiet = false
    @Argument(help: "STACK") var stack: String

    func run() throws {
        try clusterCommand {
            let list = try stackServices(try options.client(), stack)
            guard !list.isEmpty else { throw HakoError(.failed, "nothing found in stack: \(stack)") }
            if quiet { for s in list { print(s.id) }; return }
            try options.output().print(list) { printTable(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], list.map {
                [String($0.id.prefix(12)), $0.name, $0.spec.mode.rawValue, "\($0.running)/\($0.desired ?? $0.spec.replicas)",
                 $0.spec.image, ($0.spec.ingress.map { "*:" + $0 } + $0.spec.ports).joined(separator: ", ")]
            }) }
        }
    }
}

struct StackPs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List the tasks of a stack's services.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("a"), .long("all")], help: "Also the ended tasks kept as history.") var all = false
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display task IDs.") var quiet = false
    @Argument(help: "STACK") var stack: String

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            let services = try stackServices(client, stack).sorted { $0.name < $1.name }
            guard !services.isEmpty else { throw HakoError(.failed, "nothing found in stack: \(stack)") }
            var tasks: [TaskView] = []
            for s in services {
                tasks += try client.request(MessageType.servicePs, ServicePsRequest(service: s.id, all: all), as: TaskList.self).tasks
            }
            if quiet { for t in tasks { print(t.id) }; return }
            try options.output().print(tasks) { printTable(["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR"], tasks.map { t in
                [String(t.id.prefix(12)), t.name, t.image, t.nodeName ?? "", t.desired.rawValue.capitalized,
                 "\(t.state.rawValue.capitalized) \(since(t.updated))", t.message]
            }) }
        }
    }
}

struct StackRm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove stacks: all their services (their tasks stop), then the secrets and configs they created.")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "STACK...") var stacks: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            var missing: [String] = []
            for stack in stacks {
                let services = try stackServices(client, stack).sorted { $0.name < $1.name }
                if services.isEmpty { missing.append(stack); continue }
                for s in services {
                    print("Removing service \(s.name)")
                    _ = try client.request(MessageType.serviceRemove, ServiceRef(service: s.id), as: EmptyBody.self)
                }
                // Then the secrets and configs the stack created (docker stack rm's).
                for kind in SecretKind.allCases {
                    let mine = try client.request(MessageType.secretList, SecretListRequest(kind: kind), as: SecretList.self).items
                        .filter { $0.labels[Stack.namespaceLabel] == stack }.sorted { $0.name < $1.name }
                    for f in mine {
                        print("Removing \(kind.rawValue) \(f.name)")
                        _ = try client.request(MessageType.secretRemove, SecretRef(kind: kind, ref: f.id), as: EmptyBody.self)
                    }
                }
            }
            if !missing.isEmpty { throw HakoError(.failed, "nothing found in stack: \(missing.joined(separator: ", "))") }
        }
    }
}
