import HakoNetwork
import HakoSystem

/// A network a container joins, as asked for.
public struct NetworkJoin: Codable, Sendable, Equatable {
    public var name: String
    public var ip: IPv4Address?
    public var mac: MACAddress?
    public var aliases: [String]

    public init(name: String, ip: IPv4Address? = nil, mac: MACAddress? = nil, aliases: [String] = []) {
        self.name = name; self.ip = ip; self.mac = mac; self.aliases = aliases
    }
}

/// A container's network settings, stored in its configuration.
public struct ContainerNetworking: Codable, Sendable, Equatable {
    /// Networks in interface order (eth0 first); empty: the default bridge.
    public var networks: [NetworkJoin] = []
    public var ports: [PortBinding] = []
    /// -P: every EXPOSEd port of the image on a free host port.
    public var publishAll = false
    public var exposed: [String] = []
    public var dns: [IPv4Address] = []
    public var dnsSearch: [String] = []
    public var dnsOptions: [String] = []
    /// "name" → "ip" (or "host-gateway"), in order.
    public var extraHosts: [ExtraHost] = []

    public init() {}

    public struct ExtraHost: Codable, Sendable, Equatable {
        public var name: String
        /// An IPv4 address, or "host-gateway".
        public var address: String

        public init(name: String, address: String) { self.name = name; self.address = address }
    }
}

extension ContainerSpec.NetworkAttachment {
    var asksForBridgeOnlyThings: String? {
        if !ports.isEmpty || publishAll { return "publishing ports" }
        if ip != nil { return "--ip" }
        if mac != nil { return "--mac-address" }
        if !aliases.isEmpty { return "--network-alias" }
        return nil
    }
}

extension ContainerNetworking {
    /// Checks the attachment against the mode; pure. Nothing is looked up on disk here.
    static func make(_ o: ContainerSpec.NetworkAttachment, mode: NetworkMode, exposed: [String]) throws -> ContainerNetworking? {
        var n = ContainerNetworking()
        if mode != .bridge, let what = o.asksForBridgeOnlyThings {
            throw HakoError(.invalidArgument(what), "conflicting options: \(what) and --network \(mode.rawValue)")
        }
        n.ports = o.ports
        n.publishAll = o.publishAll
        n.exposed = exposed
        for (i, a) in n.ports.enumerated() {
            for b in n.ports[..<i] where a.clashes(with: b) {
                throw HakoError(.invalidArgument("-p"), "invalid -p: host port \(a.hostPort)/\(a.proto.rawValue) is published twice")
            }
        }
        n.dns = o.dns
        n.dnsSearch = o.dnsSearch
        n.dnsOptions = o.dnsOptions
        for h in o.extraHosts {
            guard Engine.isValidHostname(h.name) else { throw HakoError(.invalidArgument("--add-host"), "invalid --add-host \"\(h.name):\(h.address)\": bad host name") }
            guard h.address == "host-gateway" || IPv4Address(h.address) != nil else {
                throw HakoError(.invalidArgument("--add-host"), "invalid --add-host \"\(h.name):\(h.address)\": \"\(h.address)\" is not an IPv4 address")
            }
        }
        n.extraHosts = o.extraHosts
        if mode == .bridge {
            var join = NetworkJoin(name: o.network ?? NetworkDefinition.defaultName)
            join.ip = o.ip
            if let m = o.mac, m.isMulticast || m.isZero { throw HakoError(.invalidArgument("--mac-address"), "invalid --mac-address \"\(m)\"") }
            join.mac = o.mac
            for a in o.aliases where !Engine.isValidHostname(a) { throw HakoError(.invalidArgument("--network-alias"), "invalid --network-alias \"\(a)\"") }
            if !o.aliases.isEmpty && join.name == NetworkDefinition.defaultName {
                throw HakoError(.invalidArgument("--network-alias"), "network-scoped aliases are only supported for user-defined networks")
            }
            join.aliases = o.aliases
            n.networks = [join]
        }
        return n == ContainerNetworking() ? nil : n
    }

    /// The bindings asked for, with -P's EXPOSEd ports added (host port 0: any).
    var requestedPorts: [PortBinding] {
        var out = ports
        if publishAll {
            for e in exposed {
                guard let (p, proto) = PortBinding.exposed(e) else { continue }
                if !out.contains(where: { $0.containerPort == p && $0.proto == proto }) {
                    out.append(PortBinding(proto: proto, hostIP: nil, hostPort: 0, containerPort: p))
                }
            }
        }
        return out
    }
}

/// What a running container holds on the host's network, in the runtime dir:
/// written before the kernel is touched, so a crashed command's work can be undone.
public struct EndpointRecord: Codable, Sendable, Equatable {
    public var containerID: String
    public var name: String
    public var hostname: String
    public var netns: String
    public var attachments: [Attachment]
    /// Host ports resolved (no zeros).
    public var ports: [PortBinding]

    public var primaryIP: IPv4Address? { attachments.first?.ip }
}
