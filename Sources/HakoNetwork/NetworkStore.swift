#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoSystem

/// A network as `hako network create` defines it (or the predefined ones).
public struct NetworkDefinition: Codable, Sendable, Equatable {
    public enum Driver: String, Codable, Sendable { case bridge, host, null }
    public var id: String
    public var name: String
    public var driver: Driver
    public var subnet: IPv4Network?
    public var gateway: IPv4Address?
    /// The bridge device on the host.
    public var bridge: String
    public var created: String
    public var labels: [String: String]
    /// No masquerade to the outside.
    public var `internal`: Bool
    /// The MTU of the bridge and of both ends of every container's veth pair
    /// (Docker's `com.docker.network.driver.mtu`); nil: 1500.
    public var mtu: UInt32?
    /// Destinations that outbound traffic reaches with its own source address
    /// (no masquerade): the cluster CIDR on the cluster agent's network.
    public var masqueradeExcept: [IPv4Network]?
    /// Destinations beyond the subnet that a container reaches through this
    /// network's gateway, whichever interface has its default route: a cluster
    /// network's whole CIDR (the other nodes' subnets of it, behind the overlay).
    public var routes: [IPv4Network]?

    public init(id: String, name: String, driver: Driver, subnet: IPv4Network?, gateway: IPv4Address?, bridge: String,
                created: String, labels: [String: String] = [:], internal: Bool = false,
                mtu: UInt32? = nil, masqueradeExcept: [IPv4Network]? = nil, routes: [IPv4Network]? = nil) {
        self.id = id; self.name = name; self.driver = driver; self.subnet = subnet; self.gateway = gateway
        self.bridge = bridge; self.created = created; self.labels = labels; self.internal = `internal`
        self.mtu = mtu; self.masqueradeExcept = masqueradeExcept; self.routes = routes
    }

    /// Docker's option key for the MTU.
    public static let mtuOption = "com.docker.network.driver.mtu"
    /// The MTUs a network takes (68: IPv4's minimum link MTU).
    public static let mtuRange: ClosedRange<UInt32> = 68...65535

    /// The predefined networks: "bridge" (the default, NAT), "host", "none".
    public static let defaultName = "bridge"
    public static let predefined: Set<String> = ["bridge", "host", "none"]
    /// Containers resolve each other's names on user-defined networks only (as with Docker).
    public var resolvesNames: Bool { !NetworkDefinition.predefined.contains(name) }
}

/// Allocates addresses from a subnet: pure, given the leases already held.
public enum IPAM {
    public static func allocate(in net: IPv4Network, gateway: IPv4Address, leased: Set<IPv4Address>,
                                requested: IPv4Address?, networkName: String) throws -> IPv4Address {
        let range = net.hostRange
        if let r = requested {
            guard net.contains(r), range.contains(r.value) else {
                throw HakoError(.invalidArgument("--ip"), "invalid --ip \(r): not a host address of network \(networkName) (\(net))")
            }
            if r == gateway { throw HakoError(.invalidArgument("--ip"), "invalid --ip \(r): it is the gateway of network \(networkName)") }
            if leased.contains(r) { throw HakoError(.conflict(.inUse(.address, "\(r)", by: [])), "address \(r) is already in use on network \(networkName)") }
            return r
        }
        var v = range.lowerBound
        while true {
            let a = IPv4Address(v)
            if a != gateway && !leased.contains(a) { return a }
            if v == range.upperBound { break }
            v += 1
        }
        throw HakoError(.conflict(.inUse(.address, networkName, by: [])), "no address left on network \(networkName) (\(net)): every one of its \(range.count) addresses is in use")
    }
}

/// Networks and address leases under `<root>/networks`; one lock serialises
/// every network change (definitions, leases, endpoints, the firewall).
///
/// A lease is one symbolic link per address, `leases/<network id>/<address>`,
/// pointing at the holder's container id: made with symlink(2), which fails
/// when the name exists, so an address has one holder, and given up by
/// unlinking it — which the container's monitor can do itself (its
/// `NetworkRelease`, under this lock). Leases an older hako kept (one JSON map
/// per network, `leases/<network id>.json`) become links on first use.
public struct NetworkStore: Sendable {
    public let dir: String

    public init(dataRoot: String) { dir = dataRoot + "/networks" }

    public var lockPath: String { dir + "/lock" }
    var leasesDir: String { dir + "/leases" }
    func definitionPath(_ name: String) -> String { "\(dir)/\(name).json" }
    func leaseDir(_ networkID: String) -> String { "\(leasesDir)/\(networkID)" }
    /// The lease of `ip` on a network: a symbolic link to its holder's container id.
    public func leasePath(_ networkID: String, _ ip: IPv4Address) -> String { "\(leaseDir(networkID))/\(ip)" }
    /// An older hako's leases of a network: one JSON object, address → container id.
    func legacyLeasesPath(_ networkID: String) -> String { "\(leasesDir)/\(networkID).json" }

    public func ensure() throws {
        try FS.makeDirectories(leasesDir, mode: 0o700)
    }

    public func lock() throws -> FileLock {
        try ensure()
        return try FileLock.acquire(lockPath)
    }

    static let encoder = JSONEncoding(sortedKeys: true)

    public func list() throws -> [NetworkDefinition] {
        var out: [NetworkDefinition] = []
        let names = try FS.list(dir)
        FS.removeOrphanedTemporaries(in: dir, names: names)
        for f in names where f.hasSuffix(".json") {
            if let d = try? load(String(f.dropLast(5))) { out.append(d) }
        }
        return out.sorted { $0.name < $1.name }
    }

    public func load(_ name: String) throws -> NetworkDefinition? {
        guard let bytes = try? FS.readFile(definitionPath(name)) else { return nil }
        return try JSONDecoding().decode(NetworkDefinition.self, from: bytes)
    }

    public func save(_ d: NetworkDefinition) throws {
        try ensure()
        try FS.writeAtomic(definitionPath(d.name), try NetworkStore.encoder.encode(d))
    }

    /// The definition and every lease of the network.
    public func remove(_ d: NetworkDefinition) throws {
        try FS.unlinkIfPresent(legacyLeasesPath(d.id))
        for name in (try? FS.list(leaseDir(d.id))) ?? [] { try FS.unlinkIfPresent("\(leaseDir(d.id))/\(name)") }
        if rmdir(leaseDir(d.id)) != 0 && errno != ENOENT { throw SystemError("rmdir", leaseDir(d.id)) }
        try FS.unlinkIfPresent(definitionPath(d.name))
    }

    /// address → container id (network lock held).
    public func leases(_ networkID: String) -> [IPv4Address: String] {
        migrateLegacyLeases()
        var out: [IPv4Address: String] = [:]
        let dir = leaseDir(networkID)
        for name in (try? FS.list(dir)) ?? [] {
            guard let a = IPv4Address(name), let holder = FS.readLink("\(dir)/\(name)") else { continue }
            out[a] = holder
        }
        return out
    }

    /// Leases `ip` to container `id` (network lock held); false when the
    /// address is leased already.
    public func claim(_ networkID: String, _ ip: IPv4Address, for id: String) throws -> Bool {
        let path = leasePath(networkID, ip)
        if Glibc.symlink(id, path) == 0 { return true }
        if errno == EEXIST { return false }
        guard errno == ENOENT else { throw SystemError("symlink", path) }
        try FS.makeDirectories(leaseDir(networkID), mode: 0o700)
        if Glibc.symlink(id, path) == 0 { return true }
        if errno == EEXIST { return false }
        throw SystemError("symlink", path)
    }

    /// Gives up `ip` if container `id` holds it (network lock held).
    public func release(_ networkID: String, _ ip: IPv4Address, heldBy id: String) {
        let path = leasePath(networkID, ip)
        if FS.readLink(path) == id { _ = unlink(path) }
    }

    /// Rewrites the leases an older hako kept (one JSON file per network) as
    /// links, each address for the container that held it, and removes the old
    /// file; also the temporary files its killed writers left. Network lock held.
    func migrateLegacyLeases() {
        let names = (try? FS.list(leasesDir)) ?? []
        // FS.temporaryWriter, not String.contains: the latter's searcher made the
        // runtime scan every conformance record on each lease look-up.
        guard names.contains(where: { $0.hasSuffix(".json") || FS.temporaryWriter($0) != nil }) else { return }
        FS.removeOrphanedTemporaries(in: leasesDir, names: names)
        for name in names where name.hasSuffix(".json") {
            let networkID = String(name.dropLast(5))
            let path = legacyLeasesPath(networkID)
            guard let bytes = try? FS.readFile(path) else { continue }
            let raw = (try? JSONDecoding().decode([String: String].self, from: bytes)) ?? [:]
            for (k, holder) in raw {
                guard let a = IPv4Address(k), !holder.isEmpty, !holder.contains("/") else { continue }
                // A lease made since (a link) wins: it can only be newer.
                guard (try? claim(networkID, a, for: holder)) != nil else { return }
            }
            _ = unlink(path)
        }
    }
}

/// Names of the kernel objects hako makes, derived from ids so a crashed
/// command's leftovers can be found again.
public enum LinkNames {
    public static let defaultBridge = "hako0"
    public static func bridge(networkID: String) -> String { "hako-" + String(networkID.prefix(10)) }
    /// The host end of a container's veth: "veth" + 9 hex of the id + the interface number.
    public static func hostVeth(containerID: String, index: Int) -> String { "veth\(containerID.prefix(9))\(index % 10)" }
}
