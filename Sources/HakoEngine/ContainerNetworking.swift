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
        public var address: String
    }
}

/// The network flags of `run`/`create` before they are checked.
public struct NetworkRunOptions: Sendable {
    /// --network NAME (a user-defined network or "bridge"); nil: the default bridge.
    public var network: String?
    public var ip: String?
    public var mac: String?
    public var aliases: [String] = []
    public var publish: [String] = []
    public var publishAll = false
    public var dns: [String] = []
    public var dnsSearch: [String] = []
    public var dnsOptions: [String] = []
    public var addHosts: [String] = []

    public init() {}

    var asksForBridgeOnlyThings: String? {
        if !publish.isEmpty || publishAll { return "publishing ports" }
        if ip != nil { return "--ip" }
        if mac != nil { return "--mac-address" }
        if !aliases.isEmpty { return "--network-alias" }
        return nil
    }
}

extension ContainerNetworking {
    /// Checks every network flag; pure. Nothing is looked up on disk here.
    static func make(_ o: NetworkRunOptions, mode: NetworkMode, exposed: [String]) throws -> ContainerNetworking? {
        var n = ContainerNetworking()
        if mode != .bridge, let what = o.asksForBridgeOnlyThings {
            throw HakoError(.failed, "conflicting options: \(what) and --network \(mode.rawValue)")
        }
        for p in o.publish { n.ports += try PortBinding.parse(p) }
        n.publishAll = o.publishAll
        n.exposed = exposed
        for (i, a) in n.ports.enumerated() {
            for b in n.ports[..<i] where a.clashes(with: b) {
                throw HakoError(.failed, "invalid -p: host port \(a.hostPort)/\(a.proto.rawValue) is published twice")
            }
        }
        for d in o.dns {
            guard let a = IPv4Address(d) else { throw HakoError(.failed, "invalid --dns \"\(d)\": not an IPv4 address") }
            n.dns.append(a)
        }
        n.dnsSearch = o.dnsSearch
        n.dnsOptions = o.dnsOptions
        for h in o.addHosts {
            let sep = h.firstIndex(where: { $0 == ":" || $0 == "=" })
            guard let sep else { throw HakoError(.failed, "invalid --add-host \"\(h)\" (expected HOST:IP)") }
            let name = String(h[..<sep]), addr = String(h[h.index(after: sep)...])
            guard Engine.isValidHostname(name) else { throw HakoError(.failed, "invalid --add-host \"\(h)\": bad host name") }
            guard addr == "host-gateway" || IPv4Address(addr) != nil else {
                throw HakoError(.failed, "invalid --add-host \"\(h)\": \"\(addr)\" is not an IPv4 address")
            }
            n.extraHosts.append(ExtraHost(name: name, address: addr))
        }
        if mode == .bridge {
            var join = NetworkJoin(name: o.network ?? NetworkDefinition.defaultName)
            if let s = o.ip {
                guard let a = IPv4Address(s) else { throw HakoError(.failed, "invalid --ip \"\(s)\": not an IPv4 address") }
                join.ip = a
            }
            if let m = o.mac {
                guard let a = MACAddress(m), !a.isMulticast, !a.isZero else { throw HakoError(.failed, "invalid --mac-address \"\(m)\"") }
                join.mac = a
            }
            for a in o.aliases where !Engine.isValidHostname(a) { throw HakoError(.failed, "invalid --network-alias \"\(a)\"") }
            if !o.aliases.isEmpty && join.name == NetworkDefinition.defaultName {
                throw HakoError(.failed, "network-scoped aliases are only supported for user-defined networks")
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
