import HakoCLI
import HakoCluster
import HakoSystem

// `hako cluster network create|ls|inspect|rm`, as `docker network` on a swarm
// manager (overlay networks): each network has its own VXLAN network
// identifier and CIDR, allocated by the coordinator.

struct ClusterNetworkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Manage cluster networks (overlay): each with its own VNI and CIDR; services join them with --network.",
        subcommands: [ClusterNetworkCreate.self, ClusterNetworkLs.self, ClusterNetworkInspect.self, ClusterNetworkRm.self])
}

struct ClusterNetworkCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a cluster network (its own VXLAN and CIDR; the lowest free /20 of the coordinator's network_pool unless --subnet).")
    @OptionGroup var options: ClusterOptions
    @Option(name: [.short("d"), .long("driver")], help: "Driver: overlay (the only one).") var driver = "overlay"
    @Option(name: .long("subnet"), help: "The network's CIDR (/8 to /24), e.g. 10.97.0.0/24.") var subnet: String?
    @Flag(name: .long("attachable"), help: "Recorded and shown, as Swarm's (only services attach to cluster networks).") var attachable = false
    @Option(name: [.short("l"), .long("label")], help: "Network label (KEY=VALUE).") var label: [String] = []
    @Argument(help: "NAME") var name: String

    func run() throws {
        try clusterCommand {
            guard driver == "overlay" else { throw HakoError(.failed, "invalid --driver \"\(driver)\": cluster networks are overlay networks") }
            var labels: [String: String] = [:]
            for kv in label { try setLabel(kv, &labels) }
            try NetworkRecord.validate(name: name, labels: labels)
            let v = try options.client().request(MessageType.networkCreate,
                                                 NetworkCreateRequest(name: name, subnet: subnet, attachable: attachable, labels: labels),
                                                 as: NetworkView.self)
            print(v.id)
        }
    }
}

struct ClusterNetworkLs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List cluster networks (the built-in cluster network first).")
    @OptionGroup var options: ClusterOptions
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display IDs.") var quiet = false

    func run() throws {
        try clusterCommand {
            let items = try options.client().request(MessageType.networkList, EmptyBody(), as: NetworkList.self).items
            if quiet { for n in items { print(n.id) }; return }
            try options.output().print(items) { printTable(["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET", "VNI", "SERVICES"], items.map {
                [String($0.id.prefix(12)), $0.name, $0.driver, $0.scope, $0.subnet, String($0.vni), String($0.services.count)]
            }) }
        }
    }
}

struct ClusterNetworkInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show cluster networks (JSON).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "NETWORK...") var networks: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            for r in networks { try printJSON(try client.request(MessageType.networkInspect, NetworkRef(ref: r), as: NetworkView.self)) }
        }
    }
}

struct ClusterNetworkRm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove cluster networks (refused while a service is on one).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "NETWORK...") var networks: [String]

    func run() throws {
        try clusterCommand {
            let client = try options.client()
            for r in networks {
                _ = try client.request(MessageType.networkRemove, NetworkRef(ref: r), as: EmptyBody.self)
                print(r)
            }
        }
    }
}
