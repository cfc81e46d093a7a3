#if canImport(Glibc)
import Glibc
#endif
import CMnl
import HakoSystem
import Testing
@testable import HakoNetwork

/// The cluster networks' plan on one node: which networks it builds, with
/// which peers and entries, which devices of networks gone it deletes.
@Suite struct OverlayNetworksPlanTests {
    static let cluster = OverlayConfig(vni: 4096, port: 4789, clusterCIDR: IPv4Network("10.88.0.0/16")!)
    static let underlays: [String: IPv4Address] = ["n1": IPv4Address("172.31.252.1")!, "n2": IPv4Address("172.31.252.2")!,
                                                   "n3": IPv4Address("172.31.252.3")!]
    /// "front" on n1 and n2 (/26 of a /20), "back" on n1, n2 and n3, "solo" on n3 only.
    static let front = VXLANNetwork(id: "f0", name: "front", vni: 4097, cidr: IPv4Network("10.96.0.0/20")!,
                                    subnets: ["n1": IPv4Network("10.96.0.0/26")!, "n2": IPv4Network("10.96.0.64/26")!])
    static let back = VXLANNetwork(id: "b0", name: "back", vni: 4098, cidr: IPv4Network("10.96.16.0/20")!,
                                   subnets: ["n2": IPv4Network("10.96.16.0/26")!, "n1": IPv4Network("10.96.16.64/26")!,
                                             "n3": IPv4Network("10.96.16.128/26")!])
    static let solo = VXLANNetwork(id: "s0", name: "solo", vni: 4099, cidr: IPv4Network("10.96.32.0/20")!,
                                   subnets: ["n3": IPv4Network("10.96.32.0/26")!])

    func plan(_ node: String = "n1", _ networks: [VXLANNetwork] = [back, solo, front], devices: [String] = []) throws -> NodeNetworksPlan {
        try NodeNetworksPlan.make(node: node, underlays: Self.underlays, cluster: Self.cluster, networks: networks, devices: devices)
    }

    @Test func aNodeBuildsTheNetworksItHoldsASubnetOf() throws {
        let p = try plan()
        #expect(p.members.map(\.network.name) == ["front", "back"], "by VNI; not solo (no subnet of it here)")
        let f = try #require(p.members.first)
        #expect(f.config == OverlayConfig(vni: 4097, port: 4789, clusterCIDR: IPv4Network("10.96.0.0/20")!))
        #expect(f.node == OverlayNode(id: "n1", underlay: Self.underlays["n1"]!, subnet: IPv4Network("10.96.0.0/26")!))
        #expect(f.peers.map(\.id) == ["n2"])
        #expect(p.members[1].peers.map { "\($0.id) \($0.subnet)" } == ["n2 10.96.16.0/26", "n3 10.96.16.128/26"])
        #expect(p.members.map(\.network.deviceName) == ["hako.vx4097", "hako.vx4098"])
        #expect(p.members.map(\.network.bridgeName) == ["hako.br4097", "hako.br4098"])
        // n3 holds back and solo; solo has no peer: a device without entries.
        let p3 = try plan("n3")
        #expect(p3.members.map(\.network.name) == ["back", "solo"])
        #expect(p3.members[1].peers.isEmpty)
        #expect(try plan("n4").members.isEmpty, "a node of no network builds none")
    }

    /// Per network, the same three entries per peer as the cluster's device,
    /// with the network's subnets: golden requests.
    @Test func eachNetworkHasItsOwnEntries() throws {
        let f = try #require(try plan().members.first)
        let dev: UInt32 = 9
        let entries = OverlayPlan.make(peers: f.peers, current: OverlayState(), device: dev)
        #expect(entries.changes == 3)
        #expect(entries.addFDB == [OverlayPlan.FDB(mac: OverlayNode.vtepMAC(for: Self.underlays["n2"]!), destination: Self.underlays["n2"]!)])
        #expect(entries.setNeighbours.map(\.ip.description) == ["10.96.0.64"])
        #expect(entries.addRoutes.map { "\($0.destination) via \($0.gateway!) onlink=\($0.onLink)" } == ["10.96.0.64/26 via 10.96.0.64 onlink=true"])
        let requests = try entries.requests(device: dev)
        #expect(requests.map(\.type) == [RTM_NEWNEIGH, RTM_NEWNEIGH, RTM_NEWROUTE].map { UInt16($0) })
        #expect(hex(requests[0].bytes) == Golden.networkFDB)
        #expect(hex(requests[1].bytes) == Golden.networkNeighbour)
        #expect(hex(requests[2].bytes) == Golden.networkRoute)
        // A peer that leaves the network (its lease released) loses its entries; the other network is not touched.
        var gone = Self.front
        gone.subnets["n2"] = nil
        let shrunk = try #require(try plan("n1", [gone, Self.back]).members.first)
        #expect(shrunk.peers.isEmpty)
        let state = OverlayState(fdb: [NeighbourEntry(index: dev, ip: Self.underlays["n2"]!, mac: OverlayNode.vtepMAC(for: Self.underlays["n2"]!),
                                                      state: UInt16(HAKO_NUD_PERMANENT), flags: UInt8(HAKO_NTF_SELF))],
                                 neighbours: [NeighbourEntry(index: dev, ip: IPv4Address("10.96.0.64")!, mac: OverlayNode.vtepMAC(for: Self.underlays["n2"]!),
                                                             state: UInt16(HAKO_NUD_PERMANENT))],
                                 routes: [OverlayPlan.route(to: f.peers[0], device: dev)])
        let removal = OverlayPlan.make(peers: shrunk.peers, current: state, device: dev)
        #expect(removal.changes == 3 && removal.removeRoutes.count == 1 && removal.removeFDB.count == 1 && removal.removeNeighbours.count == 1)
        #expect(OverlayPlan.make(peers: f.peers, current: state, device: dev).changes == 0, "unchanged: nothing to do")
    }

    @Test func devicesOfNetworksGoneAreRemovedAndNothingElse() throws {
        let devices = ["lo", "eth0", "hakoc0", "hako.vx4096", "hako.vx4097", "hako.vx4098", "hako.vx4100", "hako.vx", "hako.vx41x", "hako.br4100", "vx4100"]
        #expect(try plan(devices: devices).removeDevices == ["hako.vx4100"], "not the cluster's, not the members', not other names")
        // The network removed from the map: its device goes.
        #expect(try plan("n1", [Self.back], devices: devices).removeDevices == ["hako.vx4097", "hako.vx4100"])
        #expect(try plan("n1", [], devices: devices).removeDevices == ["hako.vx4097", "hako.vx4098", "hako.vx4100"])
        #expect(VXLANNetwork.vni(ofDevice: "hako.vx4097") == 4097 && VXLANNetwork.vni(ofDevice: "hako.vx") == nil)
        #expect(VXLANNetwork.bridgeName(vni: 16_777_215).utf8.count <= 15)
    }

    @Test func segmentsFollowTheMembers() throws {
        let segments = try plan().segments(cluster: OverlaySegment(bridge: "hakoc0", device: "hako.vx4096"))
        #expect(segments.map { "\($0.bridge)/\($0.device)" } == ["hakoc0/hako.vx4096", "hako.br4097/hako.vx4097", "hako.br4098/hako.vx4098"])
    }

    @Test func badMapsAreRefusedWhole() {
        var clash = Self.back
        clash.vni = 4097
        #expect(throws: HakoError.self) { try plan("n1", [Self.front, clash]) }
        var cluster = Self.front
        cluster.vni = 4096
        #expect(throws: HakoError.self) { try plan("n1", [cluster]) }
        var overlapping = Self.back
        overlapping.cidr = IPv4Network("10.96.0.0/16")!
        #expect(throws: HakoError.self) { try plan("n1", [Self.front, overlapping]) }
        var inCluster = Self.front
        inCluster.cidr = IPv4Network("10.88.128.0/20")!
        #expect(throws: HakoError.self) { try plan("n1", [inCluster]) }
        var outside = Self.front
        outside.subnets["n2"] = IPv4Network("10.97.0.0/26")!
        do {
            _ = try plan("n1", [outside])
            Issue.record("a node subnet outside its network was taken")
        } catch let e as HakoError {
            #expect(e.message.hasPrefix("network front: overlay: node n2 subnet 10.97.0.0/26 is outside"))
        } catch { Issue.record("\(error)") }
        var twice = Self.front
        twice.subnets["n2"] = IPv4Network("10.96.0.0/26")!
        #expect(throws: HakoError.self) { try plan("n1", [twice]) }
    }
}
