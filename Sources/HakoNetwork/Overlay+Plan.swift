#if canImport(Glibc)
import Glibc
#endif
import CMnl
import HakoSystem

/// The VXLAN overlay between nodes, Flannel's "vxlan" scheme: every node has one
/// VXLAN device (`hako.vx<VNI>`, learning off) carrying the node's subnet .0/32;
/// for every other node it holds exactly three entries —
///
///     FDB        peer VTEP MAC → dst peer underlay address      (permanent, on the device)
///     neighbour  peer subnet .0 → peer VTEP MAC                  (NUD_PERMANENT, on the device)
///     route      peer subnet via peer subnet .0 dev hako.vxN onlink   (rtm_protocol = hako's)
///
/// This file is the pure part: the inputs, the kernel state read back, and the
/// difference between them (`OverlayPlan.make`). `Overlay` (Overlay.swift) reads
/// the state and applies the plan.

/// One node of the overlay: where it is on the underlay, the subnet its
/// containers use, and the MAC address of its VXLAN device (VTEP).
public struct OverlayNode: Sendable, Hashable, Codable {
    public var id: String
    public var underlay: IPv4Address
    public var subnet: IPv4Network
    public var vtepMAC: MACAddress

    public init(id: String, underlay: IPv4Address, subnet: IPv4Network, vtepMAC: MACAddress? = nil) {
        self.id = id; self.underlay = underlay; self.subnet = subnet
        self.vtepMAC = vtepMAC ?? OverlayNode.vtepMAC(for: underlay)
    }

    /// A stable, locally administered VTEP MAC derived from the underlay address
    /// (0e:48 + the address), so an agent restart keeps the same MAC.
    public static func vtepMAC(for underlay: IPv4Address) -> MACAddress { MACAddress(bytes: [0x0e, 0x48] + underlay.bytes) }

    /// The subnet's network address: the VXLAN device's address and the peers' gateway for it.
    public var vtepAddress: IPv4Address { subnet.address }
}

/// The cluster-wide settings every node shares.
public struct OverlayConfig: Sendable, Hashable, Codable {
    public var vni: UInt32
    public var port: UInt16
    public var clusterCIDR: IPv4Network

    public init(vni: UInt32 = 4096, port: UInt16 = 4789, clusterCIDR: IPv4Network) {
        self.vni = vni; self.port = port; self.clusterCIDR = clusterCIDR
    }

    /// `hako.vx<VNI>` (at most 15 bytes: VNI < 2^24).
    public var deviceName: String { "hako.vx\(vni)" }

    /// VXLAN over IPv4 costs 50 bytes: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
    public static let encapsulationOverhead: UInt32 = 50
    public static func mtu(underlay: UInt32) -> UInt32 { underlay > encapsulationOverhead + 68 ? underlay - encapsulationOverhead : 68 }

    /// rtm_protocol of every route the overlay installs: routes with another value are never touched.
    public static let routeProtocol: UInt8 = 0x68
}

/// The overlay's entries as they are in the kernel (only those on hako's device;
/// routes only those of hako's protocol through the device).
public struct OverlayState: Sendable, Equatable {
    public var fdb: [NeighbourEntry]
    public var neighbours: [NeighbourEntry]
    public var routes: [RouteEntry]

    public init(fdb: [NeighbourEntry] = [], neighbours: [NeighbourEntry] = [], routes: [RouteEntry] = []) {
        self.fdb = fdb; self.neighbours = neighbours; self.routes = routes
    }
}

/// What to change, and how much: zero changes when the kernel already matches.
public struct OverlayPlan: Sendable, Equatable {
    public struct FDB: Sendable, Hashable { public var mac: MACAddress; public var destination: IPv4Address }
    public struct Neighbour: Sendable, Hashable { public var ip: IPv4Address; public var mac: MACAddress }

    public var addFDB: [FDB] = []
    public var removeFDB: [FDB] = []
    public var setNeighbours: [Neighbour] = []
    public var removeNeighbours: [Neighbour] = []
    public var addRoutes: [RouteEntry] = []
    public var removeRoutes: [RouteEntry] = []

    public var changes: Int {
        addFDB.count + removeFDB.count + setNeighbours.count + removeNeighbours.count + addRoutes.count + removeRoutes.count
    }

    /// Checks the peer map: every peer's subnet inside the cluster CIDR, no two
    /// nodes with the same subnet, underlay address, VTEP MAC or id, no subnet
    /// overlapping another. One clear error for the first problem; nothing applied.
    public static func validate(node: OverlayNode, peers: [OverlayNode], config: OverlayConfig) throws {
        let all = [node] + peers
        for n in all {
            guard !n.id.isEmpty else { throw HakoError(.invalidArgument("node id"), "overlay: a node without an id") }
            guard config.clusterCIDR.prefix <= n.subnet.prefix, config.clusterCIDR.contains(n.subnet.address) else {
                throw HakoError(.invalidArgument("subnet"), "overlay: node \(n.id) subnet \(n.subnet) is outside the cluster network \(config.clusterCIDR)")
            }
            guard n.subnet.prefix <= 30 else {
                throw HakoError(.invalidArgument("subnet"), "overlay: node \(n.id) subnet \(n.subnet) is too small (at most /30)")
            }
            guard !n.vtepMAC.isMulticast, !n.vtepMAC.isZero else {
                throw HakoError(.invalidArgument("VTEP MAC"), "overlay: node \(n.id) VTEP MAC \(n.vtepMAC) is not a unicast address")
            }
        }
        for (i, a) in all.enumerated() {
            for b in all[(i + 1)...] {
                let clash: String? = a.id == b.id ? "id" : a.underlay == b.underlay ? "underlay address \(a.underlay)"
                    : a.subnet.overlaps(b.subnet) ? "subnet (\(a.subnet), \(b.subnet))" : a.vtepMAC == b.vtepMAC ? "VTEP MAC \(a.vtepMAC)" : nil
                if let clash { throw HakoError(.invalidArgument(clash), "overlay: nodes \(a.id) and \(b.id) share the same \(clash)") }
            }
        }
    }

    /// The entries the peer map asks for on a device with index `device`.
    public static func desired(peers: [OverlayNode], device: UInt32) -> (fdb: Set<FDB>, neighbours: [IPv4Address: MACAddress], routes: Set<RouteEntry>) {
        var fdb = Set<FDB>(), neigh: [IPv4Address: MACAddress] = [:], routes = Set<RouteEntry>()
        for p in peers {
            fdb.insert(FDB(mac: p.vtepMAC, destination: p.underlay))
            neigh[p.vtepAddress] = p.vtepMAC
            routes.insert(route(to: p, device: device))
        }
        return (fdb, neigh, routes)
    }

    static func route(to p: OverlayNode, device: UInt32) -> RouteEntry {
        RouteEntry(destination: p.subnet, gateway: p.vtepAddress, outputIndex: device, routeProtocol: OverlayConfig.routeProtocol, onLink: true)
    }

    /// The difference between what the peers ask for and `current` (already
    /// limited to hako's device). Only permanent entries are ever removed (the
    /// only kind hako creates); a neighbour is (re)set when its MAC differs or it
    /// is not permanent; FDB entries are keyed by (MAC, destination).
    public static func make(peers: [OverlayNode], current: OverlayState, device: UInt32) -> OverlayPlan {
        let want = desired(peers: peers, device: device)
        var plan = OverlayPlan()

        var haveFDB = Set<FDB>()
        for e in current.fdb where e.index == device && e.isPermanent {
            guard let mac = e.mac, let d = e.ip else { continue }
            haveFDB.insert(FDB(mac: mac, destination: d))
        }
        plan.addFDB = want.fdb.subtracting(haveFDB).sorted { ($0.destination, $0.mac.description) < ($1.destination, $1.mac.description) }
        plan.removeFDB = haveFDB.subtracting(want.fdb).sorted { ($0.destination, $0.mac.description) < ($1.destination, $1.mac.description) }

        var haveNeigh: [IPv4Address: NeighbourEntry] = [:]
        for e in current.neighbours where e.index == device { if let ip = e.ip { haveNeigh[ip] = e } }
        for (ip, mac) in want.neighbours.sorted(by: { $0.key < $1.key }) {
            if let e = haveNeigh[ip], e.isPermanent, e.mac == mac { continue }
            plan.setNeighbours.append(Neighbour(ip: ip, mac: mac))
        }
        for (ip, e) in haveNeigh.sorted(by: { $0.key < $1.key }) where want.neighbours[ip] == nil && e.isPermanent {
            plan.removeNeighbours.append(Neighbour(ip: ip, mac: e.mac ?? MACAddress(bytes: [])))
        }

        let haveRoutes = Set(current.routes.filter { $0.routeProtocol == OverlayConfig.routeProtocol && $0.outputIndex == device })
        plan.addRoutes = want.routes.subtracting(haveRoutes).sorted { $0.destination.address < $1.destination.address }
        plan.removeRoutes = haveRoutes.subtracting(want.routes).sorted { $0.destination.address < $1.destination.address }
        return plan
    }

    /// The requests, in an order that never leaves a route without its
    /// neighbour: removals of routes first, then neighbours and FDB; additions
    /// of FDB and neighbours before the routes that use them.
    public func requests(device: UInt32) throws -> [NetlinkRequest] {
        var out: [NetlinkRequest] = []
        for r in removeRoutes { out.append(try RouteRequest.ownedRoute(add: false, r)) }
        for n in removeNeighbours { out.append(try RouteRequest.neighbour(add: false, index: device, n.ip, mac: n.mac)) }
        for f in removeFDB { out.append(try RouteRequest.fdb(add: false, index: device, mac: f.mac, destination: f.destination)) }
        for f in addFDB { out.append(try RouteRequest.fdb(add: true, index: device, mac: f.mac, destination: f.destination)) }
        for n in setNeighbours { out.append(try RouteRequest.neighbour(add: true, index: device, n.ip, mac: n.mac)) }
        for r in addRoutes { out.append(try RouteRequest.ownedRoute(add: true, r)) }
        return out
    }
}
