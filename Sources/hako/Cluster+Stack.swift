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

/// A deploy or removal that prints its progress, warns on the standard error and sleeps between polls.
func stackDeployment(_ client: ClusterClient) -> StackDeployment {
    StackDeployment(channel: client, say: { (line: String) in print(line) }, warn: { (w: String) in writeStderr("warning: \(w)\n") },
                    pause: { (seconds: Double) in usleep(UInt32(seconds * 1_000_000)) })
}

struct StackDeploy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy", abstract: "Deploy a stack from Compose files, or bring it up to date: unchanged services are left alone, changed ones updated, new ones created.")
    @OptionGroup var options: ClusterOptions
    @Option(name: [.short("c"), .long("compose-file")], help: "Compose file (repeat for overrides, merged in order; - is not accepted).") var files: [String] = []
    @Flag(name: .long("prune"), help: "Remove the stack's services and networks the files no longer have.") var prune = false
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
            var deployment = stackDeployment(client)
            if resolveImage != "never" { deployment.platforms = { image in registryPlatforms(image) } }
            let touched = try deployment.deploy(translated, specs: specs, prune: prune)
            if wait { for id in touched { try waitConverged(client, service: id, timeout: bound) } }
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
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove stacks: all their services (their tasks stop), then the networks, secrets and configs they created.")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "STACK...") var stacks: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            let deployment = stackDeployment(client)
            var missing: [String] = []
            for stack in stacks {
                if try !deployment.remove(stack: stack) { missing.append(stack) }
            }
            if !missing.isEmpty { throw HakoError(.failed, "nothing found in stack: \(missing.joined(separator: ", "))") }
        }
    }
}
