import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoCluster
import HakoSystem

// `hako cluster secret|config create|ls|inspect|rm`, as `docker secret` and
// `docker config`; and the service flags that give tasks secrets and configs.

struct ClusterSecret: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret", abstract: "Manage secrets: sealed in the coordinator's store, given to tasks as files under /run/secrets.",
        subcommands: [SecretCreate.self, SecretLs.self, SecretInspect.self, SecretRm.self])
}

struct ClusterConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Manage configs: files given to tasks at their target (default /NAME).",
        subcommands: [ConfigCreate.self, ConfigLs.self, ConfigInspect.self, ConfigRm.self])
}

/// The shared work of the two command families.
enum SecretCommands {
    static func create(_ kind: SecretKind, options: ClusterOptions, name: String, file: String, labels: [String]) throws {
        var l: [String: String] = [:]
        for kv in labels { try setLabel(kv, &l) }
        let data: [UInt8]
        do {
            data = file == "-" ? try FileDescriptor(dup(0)).readAll() : try FS.readFile(file)
        } catch { throw HakoError(.failed, "cannot read \(file == "-" ? "the standard input" : file): \(error)") }
        try SecretRecord.validate(kind: kind, name: name, labels: l, size: data.count)
        let v = try options.client().request(MessageType.secretCreate, SecretCreateRequest(kind: kind, name: name, labels: l, data: data),
                                             as: SecretView.self)
        print(v.id)
    }

    static func list(_ kind: SecretKind, options: ClusterOptions, quiet: Bool) throws {
        let items = try options.client().request(MessageType.secretList, SecretListRequest(kind: kind), as: SecretList.self).items
        if quiet { for s in items { print(s.id) }; return }
        try options.output().print(items) { printTable(["ID", "NAME", "CREATED", "UPDATED"], items.map {
            [String($0.id.prefix(12)), $0.name, since($0.created), since($0.updated)]
        }) }
    }

    static func inspect(_ kind: SecretKind, options: ClusterOptions, refs: [String]) throws {
        let client = try options.client()
        for r in refs { try printJSON(try client.request(MessageType.secretInspect, SecretRef(kind: kind, ref: r), as: SecretView.self)) }
    }

    static func remove(_ kind: SecretKind, options: ClusterOptions, refs: [String]) throws {
        let client = try options.client()
        for r in refs {
            _ = try client.request(MessageType.secretRemove, SecretRef(kind: kind, ref: r), as: EmptyBody.self)
            print(r)
        }
    }
}

struct SecretCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a secret from a file or the standard input (-), at most 500 KiB.")
    @OptionGroup var options: ClusterOptions
    @Option(name: [.short("l"), .long("label")], help: "Secret label (KEY=VALUE).") var label: [String] = []
    @Argument(help: "NAME") var name: String
    @Argument(help: "FILE|-") var file: String

    func run() throws { try clusterCommand { try SecretCommands.create(.secret, options: options, name: name, file: file, labels: label) } }
}

struct SecretLs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List secrets.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display IDs.") var quiet = false

    func run() throws { try clusterCommand { try SecretCommands.list(.secret, options: options, quiet: quiet) } }
}

struct SecretInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show secrets' metadata (JSON; never their data).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "SECRET...") var secrets: [String]

    func run() throws { try clusterCommand { try SecretCommands.inspect(.secret, options: options, refs: secrets) } }
}

struct SecretRm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove secrets (refused while a service uses one).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "SECRET...") var secrets: [String]

    func run() throws { try clusterCommand { try SecretCommands.remove(.secret, options: options, refs: secrets) } }
}

struct ConfigCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a config from a file or the standard input (-), at most 500 KiB.")
    @OptionGroup var options: ClusterOptions
    @Option(name: [.short("l"), .long("label")], help: "Config label (KEY=VALUE).") var label: [String] = []
    @Argument(help: "NAME") var name: String
    @Argument(help: "FILE|-") var file: String

    func run() throws { try clusterCommand { try SecretCommands.create(.config, options: options, name: name, file: file, labels: label) } }
}

struct ConfigLs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List configs.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display IDs.") var quiet = false

    func run() throws { try clusterCommand { try SecretCommands.list(.config, options: options, quiet: quiet) } }
}

struct ConfigInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show configs' metadata (JSON; never their data).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "CONFIG...") var configs: [String]

    func run() throws { try clusterCommand { try SecretCommands.inspect(.config, options: options, refs: configs) } }
}

struct ConfigRm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove configs (refused while a service uses one).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "CONFIG...") var configs: [String]

    func run() throws { try clusterCommand { try SecretCommands.remove(.config, options: options, refs: configs) } }
}

/// `service create --secret … --config …` (`update` takes them too: they replace the lists).
struct ServiceFileFlags: ParsableArguments {
    @Option(name: .long("secret"), help: "Give the tasks a secret: NAME, or source=NAME,target=FILE,uid=,gid=,mode=0400 (at /run/secrets/FILE).") var secret: [String] = []
    @Option(name: .long("config"), help: "Give the tasks a config: NAME, or source=NAME,target=PATH,uid=,gid=,mode= (default target /NAME).") var config: [String] = []

    func apply(to spec: inout ServiceSpec) throws {
        if !secret.isEmpty { spec.secrets = try secret.map { try SecretReference(parsing: $0, kind: .secret) } }
        if !config.isEmpty { spec.configs = try config.map { try ConfigReference(parsing: $0, kind: .config) } }
    }
}

/// `service update --secret-add/--secret-rm/--config-add/--config-rm`: a
/// change of the list rolls the tasks (rotation: rm the old, add the new).
struct ServiceFileUpdateFlags: ParsableArguments {
    @Option(name: .long("secret-add"), help: "Add or replace a secret (the --secret syntax).") var secretAdd: [String] = []
    @Option(name: .long("secret-rm"), help: "Remove a secret (its name or target).") var secretRm: [String] = []
    @Option(name: .long("config-add"), help: "Add or replace a config (the --config syntax).") var configAdd: [String] = []
    @Option(name: .long("config-rm"), help: "Remove a config (its name or target).") var configRm: [String] = []

    func apply(to spec: inout ServiceSpec) throws {
        spec.secrets = try ServiceFileUpdateFlags.change(spec.secrets, remove: secretRm, add: secretAdd, kind: .secret)
        spec.configs = try ServiceFileUpdateFlags.change(spec.configs, remove: configRm, add: configAdd, kind: .config)
    }

    /// Docker's order: removals first, then additions (an added one replaces any at its target).
    static func change(_ refs: [SecretReference], remove: [String], add: [String], kind: SecretKind) throws -> [SecretReference] {
        for r in remove where !refs.contains(where: { $0.source == r || $0.target == r }) {
            throw HakoError(.failed, "the service has no \(kind.rawValue) \(r)")
        }
        var out = refs.filter { ref in !remove.contains { $0 == ref.source || $0 == ref.target } }
        for a in add {
            let ref = try SecretReference(parsing: a, kind: kind)
            out.removeAll { $0.path(kind) == ref.path(kind) }
            out.append(ref)
        }
        return out
    }
}
