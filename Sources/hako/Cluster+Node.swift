import HakoCLI
import HakoCluster
import HakoSystem

struct ClusterNode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Manage the cluster's nodes.",
        subcommands: [NodeLs.self, NodeInspect.self, NodeDrain.self, NodeActivate.self, NodeRm.self])
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
