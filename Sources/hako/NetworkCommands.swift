import HakoCLI
import FoundationEssentials
import HakoEngine
import HakoNetwork
import HakoSystem

struct NetworkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Manage networks.",
        subcommands: [NetworkCreate.self, NetworkLs.self, NetworkInspectCmd.self, NetworkRm.self, NetworkPrune.self,
                      NetworkConnect.self, NetworkDisconnect.self, NetworkTeardown.self])
}

struct NetworkCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a bridge network.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long("subnet"), help: "Subnet in CIDR form (default: a free /24 of 10.89.0.0/16).") var subnet: String?
    @Option(name: .long("gateway"), help: "Gateway address (default: the subnet's first address).") var gateway: String?
    @Option(name: [.short("d"), .long("driver")], help: "Driver (bridge only).") var driver = "bridge"
    @Flag(name: .long("internal"), help: "No traffic to the outside.") var isInternal = false
    @Option(name: .long("label"), help: "Set metadata (KEY=VALUE).") var label: [String] = []
    @Option(name: .long("mtu"), help: "MTU of the bridge and the containers' interfaces (default 1500).") var mtu: UInt32?
    @Option(name: [.short("o"), .long("opt")],
            help: "Driver option KEY=VALUE: mtu=N or com.docker.network.driver.mtu=N.") var opt: [String] = []
    @Argument(help: "NAME") var name: String

    /// `--mtu`, or the MTU given as a driver option (Docker's key or `mtu`); nil when neither.
    static func mtu(flag: UInt32?, options: [String]) throws -> UInt32? {
        var value = flag
        for o in options {
            let kv = o.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard kv.count == 2, kv[0] == "mtu" || kv[0] == NetworkDefinition.mtuOption else {
                throw HakoError(.failed, "invalid --opt \"\(o)\": the bridge driver takes mtu=N (or \(NetworkDefinition.mtuOption)=N)")
            }
            guard let m = UInt32(kv[1]) else { throw HakoError(.failed, "invalid --opt \"\(o)\": the MTU must be a number") }
            if let v = value, v != m { throw HakoError(.failed, "conflicting MTUs \(v) and \(m)") }
            value = m
        }
        return value
    }

    func run() throws {
        guard driver == "bridge" else { throw HakoError(.failed, "unsupported network driver \"\(driver)\" (bridge)") }
        var labels: [String: String] = [:]
        for l in label {
            let kv = l.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            labels[kv[0]] = kv.count > 1 ? kv[1] : ""
        }
        let mtu = try NetworkCreate.mtu(flag: mtu, options: opt)
        let engine = try global.engine()
        print(try engine.createNetwork(name: name, subnet: subnet, gateway: gateway, internal: isInternal, labels: labels, mtu: mtu).id)
    }
}

struct NetworkLs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List networks.", aliases: ["list"])
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display network IDs.") var quiet = false
    @Option(name: .long("format"), help: "Output format: table, json, or a Go template.") var format = "table"

    struct Row: Codable { var ID: String, Name: String, Driver: String, Subnet: String }

    func run() throws {
        let output = try OutputFormat(parsing: format)
        let engine = try global.engine()
        let rows = try engine.networks().map { Row(ID: String($0.id.prefix(12)), Name: $0.name, Driver: $0.driver.rawValue, Subnet: $0.subnet?.description ?? "") }
        if quiet { for r in rows { print(r.ID) }; return }
        try output.print(rows, headers: ["ID": "NETWORK ID"]) {
            printTable(["NETWORK ID", "NAME", "DRIVER", "SUBNET"], rows.map { [$0.ID, $0.Name, $0.Driver, $0.Subnet] })
        }
    }
}

struct NetworkInspectCmd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show networks as JSON.")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("f"), .long("format")], help: "A Go template applied to each network.") var format = ""
    @Argument(help: "NETWORK...") var networks: [String]

    func run() throws {
        let engine = try global.engine()
        var out: [NetworkInspect] = []
        var failure: (any Error)?
        for n in networks {
            do { out.append(try engine.inspectNetwork(n)) } catch { failure = failure ?? error }
        }
        try printInspected(out, format: format)
        if let failure { throw failure }
    }
}

struct NetworkRm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove networks no container uses.", aliases: ["remove"])
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("f"), .long("format")], help: "A Go template applied to each network.") var format = ""
    @Argument(help: "NETWORK...") var networks: [String]

    func run() throws {
        let engine = try global.engine()
        try eachContainer(networks) { n in try engine.removeNetwork(n); return n }
    }
}

struct NetworkPrune: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove every user-defined network no container uses.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("f"), .long("force")], help: "Do not ask (hako never asks).") var force = false

    func run() throws {
        let engine = try global.engine()
        let removed = try engine.pruneNetworks()
        if !removed.isEmpty { print("Deleted Networks:\n" + removed.joined(separator: "\n")) }
    }
}

struct NetworkConnect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "connect", abstract: "Connect a container to a network (live when it runs).")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long("ip"), help: "IPv4 address on the network.") var ip: String?
    @Option(name: .long("alias"), help: "Another name on the network.") var alias: [String] = []
    @Argument(help: "NETWORK") var network: String
    @Argument(help: "CONTAINER") var container: String

    func run() throws {
        try global.engine().connect(network: network, container: container, ip: ip, aliases: alias)
    }
}

struct NetworkDisconnect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disconnect", abstract: "Disconnect a container from a network (live when it runs).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("f"), .long("force")], help: "Accepted for Docker compatibility.") var force = false
    @Argument(help: "NETWORK") var network: String
    @Argument(help: "CONTAINER") var container: String

    func run() throws {
        try global.engine().disconnect(network: network, container: container)
    }
}

/// Run by a container's monitor after the container's final exit.
struct NetworkTeardown: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "teardown", abstract: "Release a stopped container's network (the monitor runs it).", shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "CONTAINER-ID") var id: String

    func run() throws {
        guard id.count == 64, id.allSatisfy(\.isHexDigit) else { throw HakoError(.failed, "teardown needs a full container id") }
        try global.engine().teardownNetwork(id)
    }
}

struct Port: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "port", abstract: "List a container's published ports.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "CONTAINER") var container: String
    @Argument(help: "PRIVATE_PORT[/PROTO]") var privatePort: String?

    func run() throws {
        let engine = try global.engine()
        var ports = try engine.ports(container)
        if let p = privatePort {
            let parts = p.split(separator: "/")
            guard let n = parts.first.flatMap({ UInt16($0) }) else { throw HakoError(.failed, "invalid port \"\(p)\"") }
            let proto = parts.count > 1 ? String(parts[1]) : "tcp"
            ports = ports.filter { $0.containerPort == n && $0.proto.rawValue == proto }
            if ports.isEmpty { throw HakoError(.failed, "no public port '\(p)' published for \(container)") }
            for b in ports { print("\(b.hostIP?.description ?? "0.0.0.0"):\(b.hostPort)") }
            return
        }
        for b in ports { print("\(b.containerPort)/\(b.proto.rawValue) -> \(b.hostIP?.description ?? "0.0.0.0"):\(b.hostPort)") }
    }
}
