import HakoCLI
import HakoCluster
import HakoSystem

struct ClusterNode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Manage the cluster's nodes.",
        subcommands: [NodeLs.self, NodeInspect.self, NodePs.self, NodeUpdate.self, NodeDrain.self, NodeActivate.self, NodeRm.self])
}

struct NodeLs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List nodes: status, availability, platform, subnet, load.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display IDs.") var quiet = false

    func run() throws {
        try clusterCommand {
            let nodes = try options.client().request(MessageType.nodeList, EmptyBody(), as: NodeList.self).nodes
            if quiet { for n in nodes { print(n.id) }; return }
            try options.output().print(nodes) { printTable(["ID", "NAME", "STATUS", "AVAILABILITY", "PLATFORM", "SUBNET", "TASKS", "CPU", "MEMORY", "LAST SEEN"], nodes.map { n in
                [String(n.id.prefix(12)), n.name, n.status.rawValue.capitalized, n.availability.rawValue.capitalized, n.platform.description, n.subnet,
                 String(n.tasks), n.load.map { "\(Int(($0.cpu * 100).rounded()))%" } ?? "-",
                 n.load.map { "\(Int(($0.memoryUsed * 100).rounded()))% of \(ByteSize.format($0.memoryTotal))" } ?? "-",
                 n.lastSeenAgo.map { $0 < 1 ? "now" : humanDuration($0) + " ago" } ?? "-"]
            }) }
        }
    }
}

struct NodeInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show nodes in detail (JSON).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "NODE...") var nodes: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            for n in nodes { try printJSON(try client.request(MessageType.nodeInspect, NodeRef(node: n), as: NodeView.self)) }
        }
    }
}

struct NodePs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List the tasks on a node.")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("a"), .long("all")], help: "Also the ended tasks kept as history.") var all = false
    @Flag(name: .long("no-trunc"), help: "Do not truncate output.") var noTrunc = false
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display task IDs.") var quiet = false
    @Argument(help: "NODE") var node: String

    func run() throws {
        try clusterCommand {
            let tasks = try options.client().request(MessageType.nodePs, NodePsRequest(node: node, all: all), as: TaskList.self).tasks
            if quiet { for t in tasks { print(t.id) }; return }
            try options.output().print(tasks) { printTable(["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR"], tasks.map { t in
                let msg = noTrunc || t.message.count <= 80 ? t.message : String(t.message.prefix(79)) + "…"
                return [noTrunc ? t.id : String(t.id.prefix(12)), t.name, t.image, t.nodeName ?? "", t.desired.rawValue.capitalized,
                        "\(t.state.rawValue.capitalized) \(since(t.updated))", msg]
            }) }
        }
    }
}

struct NodeUpdate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Change a node's availability and labels (the labels constraints see as node.labels.KEY).")
    @OptionGroup var options: ClusterOptions
    @Option(name: .long("availability"), help: "active, pause (no new tasks) or drain (no tasks: they move elsewhere).") var availability: String?
    @Option(name: .long("label-add"), help: "Add or change a node label (KEY=VALUE, or KEY for an empty value).") var labelAdd: [String] = []
    @Option(name: .long("label-rm"), help: "Remove a node label (KEY); the agent's own stay removed too.") var labelRm: [String] = []
    @Argument(help: "NODE") var node: String

    func run() throws {
        try clusterCommand {
            var r = NodeUpdateRequest(node: node)
            if let a = availability {
                guard let v = NodeAvailability(rawValue: a.lowercased()) else {
                    throw HakoError(.failed, "invalid --availability \"\(a)\": active, pause or drain")
                }
                r.availability = v
            }
            if !labelAdd.isEmpty {
                var add: [String: String] = [:]
                for l in labelAdd {
                    let kv = l.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                    guard let k = kv.first, !k.isEmpty else { throw HakoError(.failed, "invalid --label-add \"\(l)\": KEY=VALUE") }
                    add[k] = kv.count > 1 ? kv[1] : ""
                }
                r.labelAdd = add
            }
            if !labelRm.isEmpty { r.labelRemove = labelRm }
            guard r.availability != nil || r.labelAdd != nil || r.labelRemove != nil else {
                throw HakoError(.failed, "nothing to update: --availability, --label-add or --label-rm")
            }
            print(try options.client().request(MessageType.nodeUpdate, r, as: NodeView.self).name)
        }
    }
}

struct NodeDrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drain", abstract: "Take no new tasks, and move the node's tasks elsewhere.")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "NODE...") var nodes: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            for n in nodes {
                let v = try client.request(MessageType.nodeUpdate, NodeUpdateRequest(node: n, availability: .drain), as: NodeView.self)
                print(v.name)
            }
        }
    }
}

struct NodeActivate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "activate", abstract: "Let a drained node take tasks again.")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "NODE...") var nodes: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            for n in nodes {
                let v = try client.request(MessageType.nodeUpdate, NodeUpdateRequest(node: n, availability: .active), as: NodeView.self)
                print(v.name)
            }
        }
    }
}

struct NodeRm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove nodes: their subnet is released and their certificates revoked (a ready node needs --force).")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("f"), .long("force")], help: "Remove a node that is still connected.") var force = false
    @Argument(help: "NODE...") var nodes: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            for n in nodes {
                _ = try client.request(MessageType.nodeRemove, NodeRemoveRequest(node: n, force: force), as: EmptyBody.self)
                print(n)
            }
        }
    }
}
