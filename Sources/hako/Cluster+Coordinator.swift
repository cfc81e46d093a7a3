import HakoCLI
import HakoCluster
import HakoSystem

struct ClusterCoordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator", abstract: "Manage the coordinators (several replicate the cluster's state with Raft).",
        subcommands: [CoordinatorLs.self, CoordinatorRm.self, CoordinatorDemote.self])
}

struct CoordinatorLs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the coordinators: which leads, which answer (works without quorum).")
    @OptionGroup var options: ClusterOptions

    func run() throws {
        try clusterCommand {
            try options.validateFormat()
            let all = try ClusterClient.surveyCoordinators(AdminCredentials(dir: options.credentialsDir), address: options.coordinator ?? options.env("HAKO_COORDINATOR"))
            if options.json { for c in all { try printJSON(c) }; return }
            printTable(["ID", "ADDRESS", "RAFT ADDRESS", "ROLE", "REACHABLE"], all.map { c in
                [c.id == 0 ? "-" : String(c.id), c.address, c.raftAddress.isEmpty ? "-" : c.raftAddress,
                 c.leader ? "leader" : (c.reachable ? "follower" : "-"), c.reachable ? "yes" : "no"]
            })
        }
    }
}

struct CoordinatorRm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove coordinators from the voters (by ID or address; not the leader).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "COORDINATOR...") var coordinators: [String]

    func run() throws {
        try requestEach(MessageType.coordinatorRemove, coordinators, options)
    }
}

struct CoordinatorDemote: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demote", abstract: "Make coordinators spares: they keep a copy of the state but do not vote (by ID or address).")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "COORDINATOR...") var coordinators: [String]

    func run() throws {
        try requestEach(MessageType.coordinatorDemote, coordinators, options)
    }
}

/// Sends one request per coordinator named, printing each as it is done (rm, demote).
private func requestEach(_ type: String, _ coordinators: [String], _ options: ClusterOptions) throws {
    try clusterCommand {
        let client = try options.client()
        for c in coordinators {
            _ = try client.request(type, CoordinatorRef(coordinator: c), as: EmptyBody.self)
            print(c)
        }
    }
}
