#if canImport(Glibc)
import Glibc
#endif
import HakoNetwork
import HakoRuntime
import HakoSystem

/// `hako network inspect`: Docker's shape for the parts hako has.
public struct NetworkInspect: Codable, Sendable {
    public struct IPAMConfig: Codable, Sendable { public var Subnet: String; public var Gateway: String }
    public struct Member: Codable, Sendable {
        public var Name: String; public var IPv4Address: String; public var MacAddress: String
    }
    public var Name: String
    public var Id: String
    public var Created: String
    public var Driver: String
    public var Internal: Bool
    public var Bridge: String
    public var IPAM: [IPAMConfig]
    public var Containers: [String: Member]
    public var Labels: [String: String]
    /// Driver options as Docker shows them (`com.docker.network.driver.mtu`).
    public var Options: [String: String]
}

extension Engine {
    /// `hako network create`: a user-defined bridge network. The bridge itself
    /// is made when the first container joins; its device is named after the
    /// network's id unless `bridge` names it (the cluster agent's `hakoc0`).
    public func createNetwork(name: String, subnet: String?, gateway: String?, internal: Bool = false,
                              labels: [String: String] = [:], bridge: String? = nil,
                              mtu: UInt32? = nil, masqueradeExcept: [IPv4Network] = [], routes: [IPv4Network] = []) throws -> NetworkDefinition {
        try Engine.checkNetworkOptions(mtu: mtu, masqueradeExcept: masqueradeExcept)
        if routes.contains(where: { $0.prefix == 0 }) {
            throw HakoError(.invalidArgument("routes"), "invalid route 0.0.0.0/0: the default route is the first network's")
        }
        guard Names.isValid(name), name.count <= 64 else { throw HakoError(.invalidArgument("network name"), "invalid network name \"\(name)\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed") }
        if let b = bridge {
            guard (1...15).contains(b.utf8.count), b.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e }),
                  b != LinkNames.defaultBridge else {
                throw HakoError(.invalidArgument("bridge name"), "invalid bridge name \"\(b)\": 1 to 15 of a-z, 0-9, '-', '.', not \(LinkNames.defaultBridge)")
            }
        }
        if NetworkDefinition.predefined.contains(name) { throw HakoError(.permissionDenied, "network \(name) is predefined and cannot be created") }
        var net: IPv4Network?
        if let s = subnet {
            guard let n = IPv4Network(s) else { throw HakoError(.invalidArgument("--subnet"), "invalid --subnet \"\(s)\": expected an IPv4 network such as 10.89.0.0/24 with no host bits set") }
            guard n.prefix >= 8, n.prefix <= 30 else { throw HakoError(.invalidArgument("--subnet"), "invalid --subnet \(s): the prefix must be between /8 and /30") }
            net = n
        } else if gateway != nil {
            throw HakoError(.invalidArgument("--gateway"), "--gateway needs --subnet")
        }
        var gw: IPv4Address?
        if let g = gateway {
            guard let a = IPv4Address(g) else { throw HakoError(.invalidArgument("--gateway"), "invalid --gateway \"\(g)\": not an IPv4 address") }
            guard let n = net, n.contains(a), n.hostRange.contains(a.value) else { throw HakoError(.invalidArgument("--gateway"), "invalid --gateway \(g): not a host address of \(net?.description ?? "")") }
            gw = a
        }
        let lock = try networkStore.lock()
        defer { lock.release() }
        if try networkStore.load(name) != nil { throw HakoError(.conflict(.nameInUse(.network, name)), "network with name \(name) already exists") }
        if let b = bridge, let other = try networkStore.list().first(where: { $0.bridge == b }) {
            throw HakoError(.conflict(.nameInUse(.network, b)), "bridge \(b) is already network \(other.name)'s")
        }
        var existing = try networkStore.list().compactMap { d in d.subnet.map { (d.name, $0) } }
        if !existing.contains(where: { $0.0 == NetworkDefinition.defaultName }) {
            existing.append((NetworkDefinition.defaultName, IPv4Network(Engine.environment("HAKO_BRIDGE_SUBNET") ?? "") ?? Engine.defaultBridgeSubnet))
        }
        if let n = net {
            if let clash = existing.first(where: { $0.1.overlaps(n) }) {
                throw HakoError(.invalidArgument("--subnet"), "invalid --subnet \(n): it overlaps network \(clash.0) (\(clash.1))")
            }
        } else {
            // 10.89.0.0/24, 10.89.1.0/24 … the first that no network and no host address uses.
            let hostNets = Engine.hostAddresses()
            for i in 0..<256 {
                let cand = IPv4Network(IPv4Address(0x0a59_0000 | UInt32(i) << 8), prefix: 24)
                if !existing.contains(where: { $0.1.overlaps(cand) }) && !hostNets.contains(where: { $0.overlaps(cand) }) { net = cand; break }
            }
            guard net != nil else { throw HakoError(.conflict(.inUse(.address, "10.89.0.0/16", by: [])), "no free subnet left in 10.89.0.0/16; give one with --subnet") }
        }
        guard let subnet = net else { throw HakoError(.failed, "no subnet") }
        let id = hexString(randomBytes(32))
        let d = NetworkDefinition(id: id, name: name, driver: .bridge, subnet: subnet, gateway: gw ?? subnet.defaultGateway,
                                  bridge: bridge ?? LinkNames.bridge(networkID: id), created: Timestamp.now().rfc3339, labels: labels, internal: `internal`,
                                  mtu: mtu, masqueradeExcept: masqueradeExcept.isEmpty ? nil : masqueradeExcept,
                                  routes: routes.isEmpty ? nil : routes)
        try networkStore.save(d)
        return d
    }

    /// The host's own IPv4 networks (to keep new subnets off them).
    static func hostAddresses() -> [IPv4Network] {
        var out: [IPv4Network] = []
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var p = list
        while let a = p {
            if let addr = a.pointee.ifa_addr, addr.pointee.sa_family == sa_family_t(AF_INET), let mask = a.pointee.ifa_netmask {
                let ip = addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                let m = mask.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                out.append(IPv4Network(IPv4Address(ip), prefix: m.nonzeroBitCount))
            }
            p = a.pointee.ifa_next
        }
        return out
    }

    /// Every network: the predefined ones first, then the user-defined ones.
    public func networks() throws -> [NetworkDefinition] {
        let lock = try networkStore.lock()
        defer { lock.release() }
        _ = try network(named: NetworkDefinition.defaultName)
        let stored = try networkStore.list()
        let fixed = [
            NetworkDefinition(id: String(repeating: "0", count: 63) + "1", name: "host", driver: .host, subnet: nil, gateway: nil, bridge: "", created: ""),
            NetworkDefinition(id: String(repeating: "0", count: 63) + "2", name: "none", driver: .null, subnet: nil, gateway: nil, bridge: "", created: ""),
        ]
        return stored.filter { $0.name == NetworkDefinition.defaultName } + fixed + stored.filter { $0.name != NetworkDefinition.defaultName }
    }

    public func findNetwork(_ ref: String) throws -> NetworkDefinition {
        let all = try networks()
        if let d = all.first(where: { $0.name == ref || $0.id == ref }) { return d }
        let hits = all.filter { !ref.isEmpty && $0.id.hasPrefix(ref) }
        if hits.count == 1 { return hits[0] }
        throw HakoError(.notFound(.network, ref), "network \(ref) not found")
    }

    /// Containers (any state) whose configuration names the network.
    func containers(using d: NetworkDefinition) -> [ContainerConfig] {
        ((try? list()) ?? []).map(\.config).filter { c in
            guard c.networkMode == .bridge else { return d.name == c.networkMode.rawValue }
            let names = (c.networking?.networks ?? []).map(\.name)
            return (names.isEmpty ? [NetworkDefinition.defaultName] : names).contains(d.name)
        }
    }

    public func inspectNetwork(_ ref: String) throws -> NetworkInspect {
        let d = try findNetwork(ref)
        var members: [String: NetworkInspect.Member] = [:]
        for e in allEndpoints() {
            for a in e.attachments where a.networkID == d.id {
                members[e.containerID] = .init(Name: e.name, IPv4Address: "\(a.ip)/\(a.prefix)", MacAddress: a.mac.description)
            }
        }
        return NetworkInspect(Name: d.name, Id: d.id, Created: d.created, Driver: d.driver.rawValue, Internal: d.internal,
                              Bridge: d.bridge,
                              IPAM: d.subnet.map { [.init(Subnet: $0.description, Gateway: d.gateway?.description ?? "")] } ?? [],
                              Containers: members, Labels: d.labels,
                              Options: d.mtu.map { [NetworkDefinition.mtuOption: String($0)] } ?? [:])
    }

    /// `hako network rm`: refused while a container uses the network.
    public func removeNetwork(_ ref: String) throws {
        let d = try findNetwork(ref)
        if NetworkDefinition.predefined.contains(d.name) { throw HakoError(.permissionDenied, "\(d.name) is a predefined network and cannot be removed") }
        let lock = try networkStore.lock()
        defer { lock.release() }
        let users = containers(using: d)
        if !users.isEmpty {
            throw HakoError(.conflict(.inUse(.network, d.name, by: users.map(\.name).sorted())), "network \(d.name) is in use by container(s) \(users.map(\.name).sorted().joined(separator: ", ")); remove them or disconnect them first")
        }
        if d.driver == .bridge { releaseBridge(d) }
        try networkStore.remove(d)
        try syncFirewall()
    }

    /// `hako network prune`: every user-defined network no container uses; the
    /// default bridge device too when unused, so that with no network left the
    /// firewall table goes and IP forwarding is restored if hako turned it on.
    public func pruneNetworks() throws -> [String] {
        var removed: [String] = []
        for d in try networks() where !NetworkDefinition.predefined.contains(d.name) && containers(using: d).isEmpty {
            do { try removeNetwork(d.name); removed.append(d.name) } catch {}
        }
        let lock = try networkStore.lock()
        defer { lock.release() }
        if let d = try networkStore.load(NetworkDefinition.defaultName), containers(using: d).isEmpty, FS.exists(bridgeMarker(d)) {
            releaseBridge(d)
        }
        try syncFirewall()
        return removed
    }

    /// `hako network connect`: a running container gains an interface at once;
    /// a stopped one gets it at its next start.
    public func connect(network ref: String, container cref: String, ip: String? = nil, aliases: [String] = []) throws {
        let d = try findNetwork(ref)
        guard d.driver == .bridge else { throw HakoError(.invalidArgument("network"), "containers cannot be connected to the \(d.name) network") }
        let id = try resolveID(cref)
        let cp = paths.container(id)
        let clock = try FileLock.acquire(cp.lock)
        defer { clock.release() }
        var c = try load(id)
        guard c.config.networkMode == .bridge else {
            throw HakoError(.invalidArgument("--network"), "container \(c.name) uses --network \(c.config.networkMode.rawValue) and cannot be connected to a network")
        }
        var join = NetworkJoin(name: d.name, aliases: aliases)
        if let s = ip {
            guard let a = IPv4Address(s), let sub = d.subnet, sub.contains(a) else { throw HakoError(.invalidArgument("--ip"), "invalid --ip \"\(s)\" for network \(d.name)") }
            join.ip = a
        }
        for a in aliases where !Engine.isValidHostname(a) { throw HakoError(.invalidArgument("--alias"), "invalid --alias \"\(a)\"") }
        var net = c.config.networking ?? ContainerNetworking()
        if net.networks.isEmpty { net.networks = [NetworkJoin(name: NetworkDefinition.defaultName)] }
        if net.networks.contains(where: { $0.name == d.name }) { throw HakoError(.conflict(.state(.container, c.name)), "container \(c.name) is already connected to network \(d.name)") }
        if c.isRunning {
            let lock = try networkStore.lock()
            defer { lock.release() }
            guard var record = readEndpoint(id) else { throw HakoError(.notFound(.endpoint, c.name), "container \(c.name) has no network endpoint") }
            // Its new lease and peers' name files are not what its monitor was
            // told to release: from now on it runs the whole teardown (the
            // monitor looks for this file under the network lock).
            try FS.writeFile(paths.endpointTeardownGuard(id), [])
            let used = Set(record.attachments.map(\.interfaceNumber))
            let index = (0..<10).first { !used.contains($0) } ?? 9
            let a = try lease(d, join: join, containerID: id, index: index)
            record.attachments.append(a)
            try writeEndpoint(record)
            do {
                let driver = try bridgeDriver()
                let bridge = try ensureBridge(d, driver)
                let ns = try FileDescriptor.open(record.netns, O_RDONLY)
                try driver.attach(a, bridgeIndex: bridge, namespace: ns, inside: RouteNetlink(try NetlinkSocket(namespace: ns)),
                                  defaultRoute: false, mtu: d.mtu, routes: d.routes ?? [])
            } catch {
                record.attachments.removeLast()
                try? writeEndpoint(record)
                networkStore.release(d.id, a.ip, heldBy: id)
                throw error
            }
            try syncFirewall()
            net.networks.append(join)
            c.config.networking = net
            try writeConfig(c.config)
            try refreshNameFiles(changed: [d.id], also: c.config)
        } else {
            net.networks.append(join)
            c.config.networking = net
            try writeConfig(c.config)
        }
    }

    /// `hako network disconnect`: a running container loses the interface at once.
    public func disconnect(network ref: String, container cref: String) throws {
        let d = try findNetwork(ref)
        let id = try resolveID(cref)
        let clock = try FileLock.acquire(paths.container(id).lock)
        defer { clock.release() }
        var c = try load(id)
        var net = c.config.networking ?? ContainerNetworking()
        let names = net.networks.isEmpty && c.config.networkMode == .bridge ? [NetworkDefinition.defaultName] : net.networks.map(\.name)
        guard names.contains(d.name) else { throw HakoError(.notFound(.endpoint, c.name), "container \(c.name) is not connected to network \(d.name)") }
        if c.isRunning, c.config.networkMode == .bridge {
            let lock = try networkStore.lock()
            defer { lock.release() }
            if var record = readEndpoint(id), let i = record.attachments.firstIndex(where: { $0.networkID == d.id }) {
                let a = record.attachments.remove(at: i)
                try bridgeDriver().detach(a)
                try writeEndpoint(record)
                networkStore.release(d.id, a.ip, heldBy: id)
                try syncFirewall()
                try refreshNameFiles(changed: [d.id], also: c.config)
            }
        }
        if net.networks.isEmpty { net.networks = [NetworkJoin(name: NetworkDefinition.defaultName)] }
        net.networks.removeAll { $0.name == d.name }
        c.config.networking = net
        if net.networks.isEmpty && c.config.networkMode == .bridge { c.config.networkMode = .none }
        try writeConfig(c.config)
    }

    /// `hako port`: the published ports of a running container.
    public func ports(_ ref: String) throws -> [PortBinding] {
        let c = try lookup(ref)
        guard c.isRunning else { return [] }
        return readEndpoint(c.id)?.ports ?? []
    }

    /// The endpoint of a running container (for inspect and ps).
    public func endpoint(_ id: String) -> EndpointRecord? { readEndpoint(id) }
}

// MARK: - options changed in place

extension Engine {
    /// Refuses an MTU outside 68…65535 and an exception of every destination (0.0.0.0/0).
    static func checkNetworkOptions(mtu: UInt32?, masqueradeExcept: [IPv4Network]) throws {
        if let m = mtu, !NetworkDefinition.mtuRange.contains(m) {
            throw HakoError(.invalidArgument("mtu"), "invalid MTU \(m): it must be between \(NetworkDefinition.mtuRange.lowerBound) and \(NetworkDefinition.mtuRange.upperBound)")
        }
        if masqueradeExcept.contains(where: { $0.prefix == 0 }) {
            throw HakoError(.invalidArgument("masquerade exception"), "invalid masquerade exception 0.0.0.0/0: use an internal network instead")
        }
    }

    /// Changes a bridge network's MTU and masquerade exceptions in place (the
    /// cluster agent's network follows the overlay). The firewall takes the
    /// exceptions at once; the bridge, if it exists, takes the MTU at once, and
    /// containers' interfaces made from now on take it too.
    public func setNetworkOptions(_ ref: String, mtu: UInt32?, masqueradeExcept: [IPv4Network]) throws {
        try Engine.checkNetworkOptions(mtu: mtu, masqueradeExcept: masqueradeExcept)
        let found = try findNetwork(ref)
        guard found.driver == .bridge, !NetworkDefinition.predefined.contains(found.name) else {
            throw HakoError(.invalidArgument("options"), "network \(found.name) has no options to change")
        }
        let lock = try networkStore.lock()
        defer { lock.release() }
        guard var d = try networkStore.load(found.name) else { throw HakoError(.notFound(.network, ref), "network \(ref) not found") }
        let except = masqueradeExcept.isEmpty ? nil : masqueradeExcept
        guard d.mtu != mtu || d.masqueradeExcept != except else { return }
        let mtuChanged = d.mtu != mtu
        d.mtu = mtu
        d.masqueradeExcept = except
        try networkStore.save(d)
        if mtuChanged, let m = mtu {
            let links = try bridgeDriver().host
            if let l = try links.link(d.bridge), l.mtu != m { try links.setMTU(d.bridge, m) }
        }
        try syncFirewall()
    }
}
