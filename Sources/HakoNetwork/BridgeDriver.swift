#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// One interface of a container on one network.
public struct Attachment: Codable, Sendable, Equatable {
    public var networkID: String
    public var networkName: String
    public var bridge: String
    /// Inside the container: eth0, eth1 …
    public var interface: String
    public var hostVeth: String
    public var ip: IPv4Address
    public var prefix: Int
    public var gateway: IPv4Address
    public var mac: MACAddress
    public var aliases: [String]

    public init(networkID: String, networkName: String, bridge: String, interface: String, hostVeth: String,
                ip: IPv4Address, prefix: Int, gateway: IPv4Address, mac: MACAddress, aliases: [String]) {
        self.networkID = networkID; self.networkName = networkName; self.bridge = bridge; self.interface = interface
        self.hostVeth = hostVeth; self.ip = ip; self.prefix = prefix; self.gateway = gateway; self.mac = mac; self.aliases = aliases
    }

    public var interfaceNumber: Int { Int(interface.dropFirst(3)) ?? 0 }
}

/// Sysctls under /proc/sys (of the caller's network namespace).
public enum Sysctl {
    public static func read(_ key: String) -> String? {
        (try? FS.readString("/proc/sys/" + key.replacingDots()))?.trimmed
    }
    public static func write(_ key: String, _ value: String) throws {
        let fd = try FileDescriptor.open("/proc/sys/" + key.replacingDots(), O_WRONLY)
        try fd.write(value + "\n")
    }
}

extension String {
    fileprivate func replacingDots() -> String { String(map { $0 == "." ? "/" : $0 }) }
}

/// Bridges and veth pairs: the kernel side of a bridge network, over netlink.
public final class BridgeDriver: @unchecked Sendable {
    public let host: RouteNetlink
    public let mtu: UInt32

    public init(host: any NetlinkTransport, mtu: UInt32 = 1500) {
        self.host = RouteNetlink(host)
        self.mtu = mtu
    }

    /// Creates the network's bridge with its gateway address if it is missing
    /// (after a reboot, or the first use); makes sure it is up.
    public func ensureBridge(_ d: NetworkDefinition) throws {
        guard let subnet = d.subnet, let gw = d.gateway else { return }
        if let l = try host.link(d.bridge) {
            if !l.up { try host.set(d.bridge, LinkSettings(up: true)) }
        } else {
            do {
                try host.create(d.bridge, .bridge, LinkSettings(up: true, mtu: d.mtu ?? mtu, mac: MACAddress(derivedFrom: gw)))
            } catch let e as NetlinkError where e.kind == .exists {}
        }
        try host.addAddress(d.bridge, gw, prefix: subnet.prefix)
        // DNAT of localhost to a container leaves through the bridge with a 127/8 source.
        try? Sysctl.write("net.ipv4.conf.\(d.bridge).route_localnet", "1")
    }

    public func deleteBridge(_ name: String) throws { try host.delete(name) }

    /// A veth pair: the host end on the bridge (`bridgeIndex`), the other end
    /// created inside the container's namespace under its final name, with its
    /// MAC and MTU, in the same request (nothing moved or renamed after). Both
    /// ends take `mtu` (the network's), or the driver's default. The host end's
    /// look-up gives the peer's index too, and the namespace's side (`lo` and
    /// the interface up, the address, the default route) goes through `inside`,
    /// a socket of that namespace, in one exchange. `routes`: destinations
    /// beyond the subnet reached through this attachment's gateway.
    public func attach(_ a: Attachment, bridgeIndex: UInt32, namespace ns: FileDescriptor, inside: RouteNetlink,
                       defaultRoute: Bool, mtu networkMTU: UInt32? = nil, routes: [IPv4Network] = []) throws {
        let kind = LinkKind.veth(peer: a.interface, peerNamespaceFD: ns.rawValue, peerMAC: a.mac)
        let settings = LinkSettings(up: true, mtu: networkMTU ?? mtu, masterIndex: bridgeIndex)
        do {
            try host.create(a.hostVeth, kind, settings)
        } catch let e as NetlinkError where e.kind == .exists {
            // A previous run's pair whose namespace the kernel is still destroying.
            try host.delete(a.hostVeth)
            try host.create(a.hostVeth, kind, settings)
        }
        do {
            guard let veth = try host.link(a.hostVeth) else { throw NetlinkError(operation: "find link \(a.hostVeth)", errno: ENODEV) }
            _ = try host.transport.perform(try RouteRequest.setBridgePort(index: veth.index, hairpin: true))
            let peer = veth.link ?? veth.index
            var requests = [try RouteRequest.setLink("lo", LinkSettings(up: true)),
                            try RouteRequest.setLink(a.interface, LinkSettings(up: true)),
                            try RouteRequest.addAddress(index: peer, a.ip, prefix: a.prefix)]
            if defaultRoute {
                requests.append(try RouteRequest.route(add: true, destination: nil, gateway: a.gateway, index: peer))
            }
            for r in routes {
                requests.append(try RouteRequest.route(add: true, destination: r, gateway: a.gateway, index: peer))
            }
            // An address already there is fine, as for `RouteNetlink.addAddress`.
            try inside.transport.performBatch(requests, operation: "configure \(a.interface) (\(a.ip)/\(a.prefix))", tolerating: [EEXIST])
        } catch {
            try? host.delete(a.hostVeth)
            throw error
        }
    }

    /// Removes the host end (the kernel removes its peer with it).
    public func detach(_ a: Attachment) throws { try host.delete(a.hostVeth) }
}

/// A container's network namespace, pinned by a bind mount so that it lives
/// across restarts of the container and can be configured before it starts.
public enum PinnedNamespace {
    /// Makes and pins a new namespace; returns a route netlink socket inside
    /// it (opened on the thread that made it) to configure it through.
    public static func create(at path: String) throws -> NetlinkSocket {
        try FS.writeFile(path, [], mode: 0o444)
        let r = NetlinkSocket.routeSocketOfNewNamespace(pinnedAt: path)
        if r < 0 {
            try? FS.unlinkIfPresent(path)
            throw SystemError("create network namespace", path, errno: -r)
        }
        do { return try NetlinkSocket(adopting: r) } catch {
            remove(at: path)
            throw error
        }
    }

    /// Unpins and removes; an absent one is fine.
    public static func remove(at path: String) {
        _ = umount2(path, Int32(MNT_DETACH))
        _ = unlink(path)
    }
}

/// hako's nftables table and the host's IP forwarding. The table holds the
/// rules of every bridge network and the published ports of running
/// containers; it exists while hako has bridge networks set up and is removed
/// with the last of them (`hako network rm`/`prune`), which also restores IP
/// forwarding if hako turned it on. The state directory (in the runtime dir:
/// it lives as long as the kernel's state does) records what hako changed.
public final class Firewall: @unchecked Sendable {
    /// Opens the transport when a batch is to be sent: most syncs (a container
    /// without published ports) find the ruleset applied and send nothing.
    let transport: () throws -> any NftablesTransport
    let stateDir: String
    public let table: String

    public init(stateDir: String, table: String = "hako", transport: @escaping () throws -> any NftablesTransport) {
        self.transport = transport; self.stateDir = stateDir; self.table = table
    }

    var activeMarker: String { stateDir + "/firewall.active" }

    /// FNV-1a over every message of a batch.
    static func digest(_ batch: [NetlinkRequest]) -> String {
        var h = FNV1a64()
        for m in batch { h.combine(m.bytes) }
        return String(h.value, radix: 16)
    }
    var forwardingRecord: String { stateDir + "/ip_forward.before" }

    /// One atomic batch replaces the whole table; an empty ruleset removes it
    /// (only if hako made it) and restores IP forwarding if hako turned it on.
    public func sync(_ r: NatRuleset) throws {
        try FS.makeDirectories(stateDir, mode: 0o700)
        if r.isEmpty {
            guard FS.exists(activeMarker) else { return }
            try transport().apply(NftablesBatch.remove(table: table))
            try FS.unlinkIfPresent(activeMarker)
            if let before = try? FS.readString(forwardingRecord) {
                try? Sysctl.write("net.ipv4.ip_forward", before.trimmed)
                try FS.unlinkIfPresent(forwardingRecord)
            }
            return
        }
        var ruleset = r
        ruleset.table = table
        let batch = NftablesBatch.apply(ruleset)
        // The marker holds a digest of the batch last applied: an unchanged
        // ruleset (a container without published ports) needs no batch at all.
        let digest = Array(Firewall.digest(batch).utf8)
        if let applied = try? FS.readFile(activeMarker), applied == digest { return }
        let transport = try transport()
        try FS.writeFile(activeMarker, [])
        try transport.apply(batch)
        try FS.writeFile(activeMarker, digest)
        if Sysctl.read("net.ipv4.ip_forward") == "0" {
            if !FS.exists(forwardingRecord) {
                FS.removeOrphanedTemporaries(in: FS.parentDirectory(forwardingRecord))
                try FS.writeAtomic(forwardingRecord, "0\n", durable: false)
            }
            try Sysctl.write("net.ipv4.ip_forward", "1")
        }
    }
}
