#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoNetwork
import HakoRuntime
import HakoSystem

/// Where the network state lives: definitions and leases in the data root,
/// endpoints, pinned namespaces and the firewall's record in the runtime dir.
extension EnginePaths {
    public var networkState: String { runRoot + "/networks" }
    public var endpoints: String { runRoot + "/networks/endpoints" }
    public func endpoint(_ id: String) -> String { "\(endpoints)/\(id).json" }
    /// Present while a running container's network needs the whole teardown
    /// although its monitor was told it could release it alone (`network connect`).
    public func endpointTeardownGuard(_ id: String) -> String { "\(endpoints)/\(id).teardown" }
    public var netnsDir: String { runRoot + "/netns" }
    public func netns(_ id: String) -> String { "\(netnsDir)/\(id)" }
}

extension Engine {
    var networkStore: NetworkStore { NetworkStore(dataRoot: paths.root) }

    func readEndpoint(_ id: String) -> EndpointRecord? {
        guard let b = try? FS.readFile(paths.endpoint(id)) else { return nil }
        return try? Engine.decoder.decode(EndpointRecord.self, from: b)
    }

    func writeEndpoint(_ r: EndpointRecord) throws {
        try FS.makeDirectories(paths.endpoints, mode: 0o700)
        try FS.writeAtomic(paths.endpoint(r.containerID), try Engine.encoder.encode(r), durable: false)
    }

    func allEndpoints() -> [EndpointRecord] {
        ((try? FS.list(paths.endpoints)) ?? []).filter { $0.hasSuffix(".json") }.compactMap { readEndpoint(String($0.dropLast(5))) }
    }

    /// Docker's default bridge subnet (the cluster's 10.88.0.0/16 stays clear of it).
    static let defaultBridgeSubnet = IPv4Network(IPv4Address(0xac11_0000), prefix: 16)

    /// The default network, made on first use (subnet: $HAKO_BRIDGE_SUBNET or 172.17.0.0/16).
    func network(named name: String) throws -> NetworkDefinition {
        if let d = try networkStore.load(name) { return d }
        guard name == NetworkDefinition.defaultName else { throw HakoError(.notFound(.network, name), "network \(name) not found") }
        let text = Engine.environment("HAKO_BRIDGE_SUBNET") ?? Engine.defaultBridgeSubnet.description
        guard let subnet = IPv4Network(text), subnet.prefix <= 30 else {
            throw HakoError(.invalidArgument("HAKO_BRIDGE_SUBNET"), "invalid HAKO_BRIDGE_SUBNET \"\(text)\" (expected a CIDR such as 172.17.0.0/16)")
        }
        let d = NetworkDefinition(id: hexString(randomBytes(32)), name: name, driver: .bridge, subnet: subnet,
                                  gateway: subnet.defaultGateway, bridge: LinkNames.defaultBridge, created: Timestamp.now().rfc3339)
        try networkStore.save(d)
        return d
    }

    /// A bridge hako has set up since boot has a marker in the runtime dir: its
    /// network's rules stay in the firewall until it is removed.
    func bridgeMarker(_ d: NetworkDefinition) -> String { "\(paths.networkState)/bridges/\(d.bridge)" }

    /// Returns the bridge's index.
    func ensureBridge(_ d: NetworkDefinition, _ driver: BridgeDriver) throws -> UInt32 {
        // Set up since boot and still there and up: nothing to do (one request).
        if FS.exists(bridgeMarker(d)), let l = try driver.host.link(d.bridge), l.up { return l.index }
        try driver.ensureBridge(d)
        if !FS.exists(bridgeMarker(d)) {
            try FS.makeDirectories(paths.networkState + "/bridges", mode: 0o700)
            try FS.writeFile(bridgeMarker(d), [])
        }
        return try driver.host.index(of: d.bridge)
    }

    /// Deletes a network's bridge device (and its rules, at the next sync).
    func releaseBridge(_ d: NetworkDefinition) {
        try? bridgeDriver().deleteBridge(d.bridge)
        try? FS.unlinkIfPresent(bridgeMarker(d))
    }

    func bridgeDriver() throws -> BridgeDriver { BridgeDriver(host: try NetlinkSocket()) }

    func firewall() -> Firewall {
        Firewall(stateDir: paths.networkState) { try NetlinkSocket.nftables() }
    }

    // MARK: - start and end of a container's networking

    /// Called from `launch` (container lock held): sets up the container's
    /// network namespace, interfaces, addresses, routes, published ports and
    /// name files. Returns its endpoint (the namespace to join), or nil (none/host).
    /// `pinned` is told the endpoint as soon as its namespace exists (all a
    /// launch spec needs), while the rest is still being set up.
    func prepareNetwork(_ config: ContainerConfig, pinned: ((EndpointRecord) -> Void)? = nil) throws -> EndpointRecord? {
        let net = config.networking ?? ContainerNetworking()
        guard config.networkMode == .bridge else {
            if config.networkMode == .none && (!net.extraHosts.isEmpty || !net.dns.isEmpty) {
                try writeNameFiles(config, record: nil, peers: [])
            }
            return nil
        }
        let lock = try networkStore.lock()
        defer { lock.release() }
        do {
            return try setUpEndpoint(config, net, pinned: pinned)
        } catch {
            teardownLocked(config.id)
            throw error
        }
    }

    private func setUpEndpoint(_ config: ContainerConfig, _ net: ContainerNetworking,
                               pinned: ((EndpointRecord) -> Void)?) throws -> EndpointRecord {
        let id = config.id
        let joins = net.networks.isEmpty ? [NetworkJoin(name: NetworkDefinition.defaultName)] : net.networks
        var attachments: [Attachment] = []
        var defs: [NetworkDefinition] = []
        for (i, j) in joins.enumerated() {
            let d = try network(named: j.name)
            guard d.driver == .bridge else { throw HakoError(.invalidArgument("--network"), "network \(d.name) cannot be joined by a container of its own namespace") }
            defs.append(d)
            attachments.append(try lease(d, join: j, containerID: id, index: i))
        }
        var others = allEndpoints().filter { $0.containerID != id }
        let ports = try assignPorts(net.requestedPorts, others: &others, name: config.name)
        let record = EndpointRecord(containerID: id, name: config.name, hostname: config.hostname,
                                    netns: paths.netns(id), attachments: attachments, ports: ports)
        try writeEndpoint(record)  // the journal: from here on, teardown knows what to undo
        try FS.makeDirectories(paths.netnsDir, mode: 0o700)
        PinnedNamespace.remove(at: record.netns)
        let inside = RouteNetlink(try PinnedNamespace.create(at: record.netns))
        pinned?(record)
        let driver = try bridgeDriver()
        let ns = try FileDescriptor.open(record.netns, O_RDONLY)
        for (i, a) in attachments.enumerated() {
            let bridge = try ensureBridge(defs[i], driver)
            try driver.attach(a, bridgeIndex: bridge, namespace: ns, inside: inside, defaultRoute: i == 0, mtu: defs[i].mtu,
                              routes: defs[i].routes ?? [])
        }
        try syncFirewall()
        try refreshNameFiles(changed: Set(attachments.map(\.networkID)), also: config)
        return record
    }

    /// Leases an address on `d` for the container (under the network lock).
    func lease(_ d: NetworkDefinition, join j: NetworkJoin, containerID id: String, index: Int) throws -> Attachment {
        guard let subnet = d.subnet, let gw = d.gateway else { throw HakoError(.failed, "network \(d.name) has no subnet") }
        // An address asked for by --ip that an ended container still holds is free (as its ports are).
        if let wanted = j.ip, let holder = networkStore.leases(d.id)[wanted], holder != id { _ = reclaimIfEnded(holder) }
        // Leases of containers that hold no endpoint any more (a reboot, a crash),
        // and this container's own of an earlier start, are free again: they go.
        let live = Set(allEndpoints().map(\.containerID))
        var leased = Set<IPv4Address>()
        for (a, holder) in networkStore.leases(d.id) {
            if live.contains(holder) && holder != id { leased.insert(a) } else { networkStore.release(d.id, a, heldBy: holder) }
        }
        let ip = try IPAM.allocate(in: subnet, gateway: gw, leased: leased, requested: j.ip, networkName: d.name)
        guard try networkStore.claim(d.id, ip, for: id) else { throw HakoError(.conflict(.inUse(.address, "\(ip)", by: [])), "address \(ip) is already in use on network \(d.name)") }
        return Attachment(networkID: d.id, networkName: d.name, bridge: d.bridge, interface: "eth\(index)",
                          hostVeth: LinkNames.hostVeth(containerID: id, index: index), ip: ip, prefix: subnet.prefix,
                          gateway: gw, mac: j.mac ?? MACAddress(derivedFrom: ip), aliases: j.aliases)
    }

    /// Gives every binding a host port; refuses one another container holds.
    /// Network lock held; `others` loses the endpoints of ended containers it reclaims.
    func assignPorts(_ wanted: [PortBinding], others: inout [EndpointRecord], name: String) throws -> [PortBinding] {
        var out: [PortBinding] = []
        for var b in wanted {
            if b.hostPort == 0 {
                b.hostPort = try freeHostPort(b, taken: others.flatMap(\.ports) + out)
            } else if let o = portHolder(b, among: &others) {
                throw HakoError(.conflict(.inUse(.port, "\(b.hostPort)/\(b.proto.rawValue)", by: [o.name])), "cannot publish \(b.hostIP?.description ?? "0.0.0.0"):\(b.hostPort)/\(b.proto.rawValue) for \(name): the port is already published by container \(o.name)")
            }
            out.append(b)
        }
        return out
    }

    /// The container among `others` that publishes a port clashing with `b`
    /// and still runs. A clashing container that has ended (a `run --rm` that
    /// has returned while its monitor still tears the network down) gives its
    /// endpoint up on the spot and leaves `others`. Network lock held: create
    /// and start decide the same way.
    func portHolder(_ b: PortBinding, among others: inout [EndpointRecord]) -> EndpointRecord? {
        while let i = others.firstIndex(where: { $0.ports.contains { $0.clashes(with: b) } }) {
            let o = others[i]
            guard reclaimIfEnded(o.containerID) else { return o }
            others.remove(at: i)
        }
        return nil
    }

    /// A container whose final exit is recorded (its monitor is running the
    /// teardown right now) gives up its endpoint at once; true if it did.
    func reclaimIfEnded(_ id: String) -> Bool {
        let cp = paths.container(id)
        if FS.isDirectory(cp.dir) {
            guard readState(id)?.status == "exited", let l = try? FileLock.tryAcquire(cp.lock) else { return false }
            defer { l.release() }
            teardownLocked(id)
            return true
        }
        teardownLocked(id)
        return true
    }

    /// A host port no container publishes and no socket holds, from the
    /// kernel's ephemeral range (as Docker picks them).
    func freeHostPort(_ b: PortBinding, taken: [PortBinding]) throws -> UInt16 {
        let range = Sysctl.read("net.ipv4.ip_local_port_range")?.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt16($0) } ?? []
        let lo = range.first ?? 32768, hi = range.count > 1 ? range[1] : 60999
        for p in lo...max(lo, hi) {
            var c = b
            c.hostPort = p
            if taken.contains(where: { $0.clashes(with: c) }) { continue }
            if Engine.portIsFree(p, udp: b.proto == .udp) { return p }
        }
        throw HakoError(.conflict(.inUse(.port, "\(b.containerPort)/\(b.proto.rawValue)", by: [])), "no free host port for \(b.containerPort)/\(b.proto.rawValue)")
    }

    static func portIsFree(_ port: UInt16, udp: Bool) -> Bool {
        let s = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if s < 0 { return true }
        defer { close(s) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return r == 0
    }

    /// Undoes everything a container holds on the network: the monitor runs it
    /// (`hako network teardown`) after the container's final exit; the next hako
    /// command runs it for containers whose monitor was killed.
    public func teardownNetwork(_ id: String) throws {
        let lock = try networkStore.lock()
        defer { lock.release() }
        teardownLocked(id)
    }

    func teardownLocked(_ id: String) {
        let record = readEndpoint(id)
        // Unpinning the namespace is enough: the kernel destroys it, and with it
        // every veth pair of the container, in the background (deleting a veth
        // here would wait for the kernel's grace period, ~20 ms each).
        PinnedNamespace.remove(at: paths.netns(id))
        for d in (try? networkStore.list()) ?? [] {
            for (a, holder) in networkStore.leases(d.id) where holder == id { networkStore.release(d.id, a, heldBy: id) }
        }
        try? FS.unlinkIfPresent(paths.endpointTeardownGuard(id))
        try? FS.unlinkIfPresent(paths.endpoint(id))
        try? syncFirewall()
        if let record { try? refreshNameFiles(changed: Set(record.attachments.map(\.networkID)), also: nil) }
    }

    /// Removes what containers that no longer run still hold (their monitor was
    /// killed, or the command starting them was). Cheap when there is nothing.
    /// Also removes the temporary files of killed writers in the network
    /// state (an endpoint record half-written by a `run` killed at that moment).
    public func reconcileNetworks() {
        let endpointNames = (try? FS.list(paths.endpoints)) ?? []
        FS.removeOrphanedTemporaries(in: paths.endpoints, names: endpointNames)
        let ids = Set(endpointNames.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) })
            .union(endpointNames.filter { $0.hasSuffix(".teardown") }.map { String($0.dropLast(9)) })
            .union(((try? FS.list(paths.netnsDir)) ?? []).filter { $0.count == 64 })
        for id in ids where !monitorAlive(id) {
            let cp = paths.container(id)
            var held: FileLock?
            if FS.isDirectory(cp.dir) {
                guard let l = try? FileLock.tryAcquire(cp.lock) else { continue }  // being started right now
                held = l
                if monitorAlive(id) { continue }
            }
            try? teardownNetwork(id)
            held?.release()
        }
    }

    /// Rebuilds hako's nftables table: the rules of every bridge network whose
    /// bridge hako has set up, and the published ports of running containers.
    func syncFirewall() throws {
        let endpoints = allEndpoints()
        var bridges: [BridgeRules] = []
        for d in (try? networkStore.list()) ?? [] where d.driver == .bridge && FS.exists(bridgeMarker(d)) {
            guard let s = d.subnet else { continue }
            bridges.append(BridgeRules(bridge: d.bridge, subnet: s, outbound: !d.internal, masqueradeExcept: d.masqueradeExcept ?? []))
        }
        var forwards: [PortForward] = []
        for e in endpoints {
            guard let ip = e.primaryIP else { continue }
            for p in e.ports {
                forwards.append(PortForward(proto: p.proto, hostIP: p.hostIP, hostPort: p.hostPort, containerIP: ip, containerPort: p.containerPort))
            }
        }
        let r = NatRuleset(bridges: bridges.sorted { $0.bridge < $1.bridge }, forwards: forwards)
        if r.isEmpty && !FS.exists(paths.networkState + "/firewall.active") { return }
        try firewall().sync(r)
    }

    // MARK: - /etc/hosts and /etc/resolv.conf

    /// Rewrites the name files of every running member of the networks in
    /// `changed` (and of `also`): each lists its peers on user-defined networks.
    func refreshNameFiles(changed: Set<String>, also: ContainerConfig?) throws {
        let endpoints = allEndpoints()
        let resolving = Set(((try? networkStore.list()) ?? []).filter(\.resolvesNames).map(\.id))
        for e in endpoints {
            let isAlso = e.containerID == also?.id
            guard isAlso || e.attachments.contains(where: { changed.contains($0.networkID) && resolving.contains($0.networkID) }) else { continue }
            guard let config = isAlso ? also : (try? readConfig(e.containerID)) else { continue }
            var peers: [(IPv4Address, [String])] = []
            for a in e.attachments where resolving.contains(a.networkID) {
                for o in endpoints where o.containerID != e.containerID {
                    for b in o.attachments where b.networkID == a.networkID {
                        peers.append((b.ip, [o.name] + b.aliases + [String(o.containerID.prefix(12))]))
                    }
                }
            }
            try writeNameFiles(config, record: e, peers: peers)
        }
    }

    /// "address<TAB>name name…" and a newline. A loop rather than
    /// `joined(separator:)`: the standard library's runs unspecialized, and
    /// its first call in a process made the runtime scan every conformance
    /// record of the binary (tens to hundreds of µs of a bridge start).
    static func appendHostsLine(_ text: inout String, _ address: IPv4Address, _ names: [String]) {
        text += address.description
        for (i, name) in names.enumerated() {
            text += i == 0 ? "\t" : " "
            text += name
        }
        text += "\n"
    }

    /// Writes a container's hosts (and resolv.conf when --dns was given) in
    /// place: the files are bind-mounted into the running container.
    func writeNameFiles(_ config: ContainerConfig, record: EndpointRecord?, peers: [(IPv4Address, [String])]) throws {
        let cp = paths.container(config.id)
        let net = config.networking ?? ContainerNetworking()
        var text = hostsFile(config)
        for h in net.extraHosts {
            let addr = h.address == "host-gateway" ? (record?.attachments.first?.gateway.description ?? "127.0.0.1") : h.address
            text += "\(addr)\t\(h.name)\n"
        }
        if let ip = record?.primaryIP {
            Self.appendHostsLine(&text, ip, [config.hostname] + (record?.attachments.first?.aliases ?? []))
        }
        for (ip, names) in peers { Self.appendHostsLine(&text, ip, names) }
        try FS.writeFile(cp.hosts, Array(text.utf8))
        if !net.dns.isEmpty || !net.dnsSearch.isEmpty || !net.dnsOptions.isEmpty {
            var r = ""
            let hostResolv = (try? FS.readString("/etc/resolv.conf")) ?? ""
            let servers = net.dns.isEmpty
                ? hostResolv.split(separator: "\n").filter { $0.hasPrefix("nameserver") }.map(String.init)
                : net.dns.map { "nameserver \($0)" }
            r += servers.joined(separator: "\n") + "\n"
            if !net.dnsSearch.isEmpty { r += "search \(net.dnsSearch.joined(separator: " "))\n" }
            if !net.dnsOptions.isEmpty { r += "options \(net.dnsOptions.joined(separator: " "))\n" }
            try FS.writeFile(cp.resolvConf, Array(r.utf8))
        }
    }

    /// After a container's final exit its monitor tells the clients, then runs the
    /// clean-up (network teardown) before it ends: wait for that before the
    /// container is started again or removed.
    func awaitFinalCleanup(_ id: String) throws {
        if monitorAlive(id) && readState(id)?.status == "exited" { try awaitMonitorExit(id, timeout: 40) }
    }

    /// The argv the monitor runs after the container's final exit.
    func networkCleanupCommand(_ id: String) -> [String] {
        let exe = Engine.environment("HAKO_BIN") ?? FS.readLink("/proc/self/exe") ?? "/usr/local/bin/hako"
        return [exe, "network", "teardown", "--root", paths.root, "--run-root", paths.runRoot, id]
    }
}

extension Engine {
    /// At create: the networks exist and no running container publishes the
    /// same host ports (ended ones are reclaimed, as at start: `portHolder`).
    func checkNetworking(_ c: ContainerConfig) throws {
        guard c.networkMode == .bridge, let net = c.networking else { return }
        for j in net.networks where j.name != NetworkDefinition.defaultName {
            guard let d = try networkStore.load(j.name) else { throw HakoError(.notFound(.network, j.name), "network \(j.name) not found") }
            if let ip = j.ip, let s = d.subnet, !s.contains(ip) {
                throw HakoError(.invalidArgument("--ip"), "invalid --ip \(ip): not in the subnet \(s) of network \(d.name)")
            }
        }
        let fixed = net.ports.filter { $0.hostPort != 0 }
        guard !fixed.isEmpty else { return }
        let lock = try networkStore.lock()
        defer { lock.release() }
        var others = allEndpoints()
        for b in fixed {
            if let o = portHolder(b, among: &others) {
                throw HakoError(.conflict(.inUse(.port, "\(b.hostPort)/\(b.proto.rawValue)", by: [o.name])), "cannot publish \(b.hostIP?.description ?? "0.0.0.0"):\(b.hostPort)/\(b.proto.rawValue): the port is already published by container \(o.name)")
            }
        }
    }

    /// The start path's hook (container lock held): network namespace and
    /// interfaces, mounts of volumes and binds; the monitor tears the network down.
    /// `network`: the endpoint from `prepareNetwork(config)` already under
    /// way on a thread of its own (`Engine.launch`); without it, it runs here.
    func prepareNetworkAndStorage(_ config: ContainerConfig, runtime: inout RuntimeSpec, monitor: inout MonitorSpec,
                                  network: Handoff<EndpointRecord?>? = nil) throws {
        // Before the name files: /etc/hosts and friends stay on top of a volume at /etc.
        let mounts = try storageMounts(config, rootfs: runtime.rootfs)
        runtime.propagation = Self.rootPropagation(config.storage)
        let at = runtime.mounts.firstIndex { $0.target == "/etc/hostname" } ?? runtime.mounts.count
        runtime.mounts.insert(contentsOf: mounts, at: at)
        if config.autoRemove {
            let anonymous = (config.storage?.mounts ?? []).filter { $0.kind == .volume && $0.anonymous }.map { paths.volume($0.source) }
            monitor.removeDirs += anonymous
        }
        let endpoint: EndpointRecord?
        if let network { endpoint = try network.wait() } else { endpoint = try prepareNetwork(config) }
        if let record = endpoint {
            runtime.namespaces.network = .path(record.netns)
            monitor.cleanupCommand = networkCleanupCommand(config.id)
            if Self.releasesNetworkAlone(record) { monitor.networkRelease = networkRelease(record) }
        }
    }

    /// Whether the monitor can release the container's network by itself
    /// after its final exit instead of running `hako network teardown` (a
    /// second hako process, ~5 ms of start-up in the way of the next start):
    /// so when it publishes no port (the firewall does not change) and joins
    /// only the predefined networks (no peer's name files list it). What is
    /// left to do then is unpinning its namespace and unlinking its leases
    /// and endpoint record.
    static func releasesNetworkAlone(_ record: EndpointRecord) -> Bool {
        record.ports.isEmpty && record.attachments.allSatisfy { NetworkDefinition.predefined.contains($0.networkName) }
    }

    /// The monitor's own release of `record` (`releasesNetworkAlone`).
    func networkRelease(_ record: EndpointRecord) -> NetworkRelease {
        NetworkRelease(lock: networkStore.lockPath, teardownGuard: paths.endpointTeardownGuard(record.containerID),
                       namespace: record.netns, leases: record.attachments.map { networkStore.leasePath($0.networkID, $0.ip) },
                       endpointRecord: paths.endpoint(record.containerID))
    }

    /// A start that failed after `prepareNetworkAndStorage`.
    func undoNetworkAndStorage(_ config: ContainerConfig) {
        if config.networkMode == .bridge { try? teardownNetwork(config.id) }
    }
}
