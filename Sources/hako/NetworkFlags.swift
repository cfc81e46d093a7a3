import HakoCLI
import HakoEngine

/// `run`/`create` flags for networks and published ports.
struct NetworkFlags: ParsableArguments {
    @Option(name: [.short("p"), .long("publish")], help: "Publish a port: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp], ranges allowed.") var publish: [String] = []
    @Flag(name: [.short("P"), .long("publish-all")], help: "Publish every EXPOSEd port on a free host port.") var publishAll = false
    @Option(name: .long("ip"), help: "IPv4 address on the network.") var ip: String?
    @Option(name: .long("mac-address"), help: "MAC address of the container's interface.") var macAddress: String?
    @Option(name: .long("network-alias"), help: "Another name the container has on its network.") var networkAlias: [String] = []
    @Option(name: .long("dns"), help: "A DNS server for the container.") var dns: [String] = []
    @Option(name: .long("dns-search"), help: "A DNS search domain.") var dnsSearch: [String] = []
    @Option(name: .long("dns-option"), help: "A resolver option.") var dnsOption: [String] = []
    @Option(name: .long("add-host"), help: "Add a host name to /etc/hosts (HOST:IP, IP may be host-gateway).") var addHost: [String] = []

    /// `--network` value → mode and network name.
    func apply(network: String?, to o: inout RunFlags) {
        switch network {
        case nil, "", "bridge", "default": o.network = .bridge
        case "none": o.network = .none
        case "host": o.network = .host
        case let name?:
            o.network = .bridge
            o.networking.network = name
        }
        o.networking.ip = ip
        o.networking.mac = macAddress
        o.networking.aliases = networkAlias
        o.networking.publish = publish
        o.networking.publishAll = publishAll
        o.networking.dns = dns
        o.networking.dnsSearch = dnsSearch
        o.networking.dnsOptions = dnsOption
        o.networking.addHosts = addHost
    }
}
