#if canImport(Glibc)
import Glibc
#endif
import CMnl
import HakoSystem
import Testing
@testable import HakoNetwork

/// The overlay's pure part: validation, the difference to the kernel, the requests, the dump parsers.
@Suite struct OverlayPlanTests {
    static let config = OverlayConfig(vni: 42, clusterCIDR: IPv4Network("10.77.0.0/16")!)
    static func node(_ n: UInt32) -> OverlayNode {
        OverlayNode(id: "node\(n)", underlay: IPv4Address(0xac1f_fc00 | n), subnet: IPv4Network(IPv4Address(0x0a4d_0000 | n << 8), prefix: 24))
    }
    let me = node(1), peers = [node(2), node(3)]
    let dev: UInt32 = 7

    /// The kernel state exactly as the plan for `peers` would leave it.
    func state(for peers: [OverlayNode]) -> OverlayState {
        OverlayState(
            fdb: peers.map { NeighbourEntry(index: dev, ip: $0.underlay, mac: $0.vtepMAC, state: UInt16(HAKO_NUD_PERMANENT), flags: UInt8(HAKO_NTF_SELF)) },
            neighbours: peers.map { NeighbourEntry(index: dev, ip: $0.vtepAddress, mac: $0.vtepMAC, state: UInt16(HAKO_NUD_PERMANENT)) },
            routes: peers.map { OverlayPlan.route(to: $0, device: dev) })
    }

    @Test func fromNothingThreeEntriesPerPeer() throws {
        let plan = OverlayPlan.make(peers: peers, current: OverlayState(), device: dev)
        #expect(plan.changes == 6)
        #expect(plan.addFDB.map(\.destination.description) == ["172.31.252.2", "172.31.252.3"])
        #expect(plan.setNeighbours.map(\.ip.description) == ["10.77.2.0", "10.77.3.0"])
        #expect(plan.addRoutes.map { "\($0.destination) via \($0.gateway!) onlink=\($0.onLink) proto=\($0.routeProtocol)" }
                == ["10.77.2.0/24 via 10.77.2.0 onlink=true proto=104", "10.77.3.0/24 via 10.77.3.0 onlink=true proto=104"])
        let requests = try plan.requests(device: dev)
        // FDB and neighbours before the routes that need them
        #expect(requests.map(\.type) == [RTM_NEWNEIGH, RTM_NEWNEIGH, RTM_NEWNEIGH, RTM_NEWNEIGH, RTM_NEWROUTE, RTM_NEWROUTE].map { UInt16($0) })
        #expect(hex(requests[0].bytes) == Golden.overlayFDB)
        #expect(hex(requests[4].bytes) == Golden.overlayRoute)
        // a route never replaces someone else's: NLM_F_EXCL, no NLM_F_REPLACE
        #expect(requests[4].flags & UInt16(NLM_F_EXCL) != 0 && requests[4].flags & UInt16(NLM_F_REPLACE) == 0)
    }

    @Test func matchingStateMeansNoChange() {
        #expect(OverlayPlan.make(peers: peers, current: state(for: peers), device: dev).changes == 0)
        // peer order does not matter
        #expect(OverlayPlan.make(peers: peers.reversed(), current: state(for: peers), device: dev).changes == 0)
    }

    @Test func aDepartedPeerLosesExactlyItsThreeEntries() throws {
        let plan = OverlayPlan.make(peers: [peers[0]], current: state(for: peers), device: dev)
        #expect(plan.changes == 3)
        #expect(plan.removeFDB == [OverlayPlan.FDB(mac: peers[1].vtepMAC, destination: peers[1].underlay)])
        #expect(plan.removeNeighbours.map(\.ip) == [peers[1].vtepAddress])
        #expect(plan.removeRoutes.map(\.destination) == [peers[1].subnet])
        let requests = try plan.requests(device: dev)
        #expect(requests.map(\.type) == [RTM_DELROUTE, RTM_DELNEIGH, RTM_DELNEIGH].map { UInt16($0) }, "the route goes first")
        #expect(hex(requests[0].bytes) == Golden.overlayRouteDelete)
    }

    @Test func foreignEntriesAreLeftAlone() {
        var s = state(for: peers)
        // another protocol's route through the device, a route of ours through another device
        s.routes.append(RouteEntry(destination: IPv4Network("10.99.0.0/24")!, gateway: nil, outputIndex: dev, routeProtocol: UInt8(RTPROT_BOOT), onLink: false))
        s.routes.append(RouteEntry(destination: IPv4Network("10.98.0.0/24")!, gateway: nil, outputIndex: 3, routeProtocol: OverlayConfig.routeProtocol, onLink: false))
        // entries of other devices, a learnt (not permanent) neighbour, an FDB entry without a remote
        s.neighbours.append(NeighbourEntry(index: 3, ip: IPv4Address("10.77.9.0"), mac: MACAddress("02:00:00:00:00:09"), state: UInt16(HAKO_NUD_PERMANENT)))
        s.neighbours.append(NeighbourEntry(index: dev, ip: IPv4Address("10.77.8.0"), mac: nil, state: 0x20))
        s.fdb.append(NeighbourEntry(index: 3, ip: IPv4Address("172.31.252.9"), mac: MACAddress("02:00:00:00:00:09"), state: UInt16(HAKO_NUD_PERMANENT)))
        s.fdb.append(NeighbourEntry(index: dev, ip: nil, mac: MACAddress("33:33:00:00:00:01"), state: UInt16(HAKO_NUD_PERMANENT)))
        #expect(OverlayPlan.make(peers: peers, current: s, device: dev).changes == 0)
    }

    @Test func movedOrChangedPeersAreRepaired() {
        var moved = peers
        moved[0].underlay = IPv4Address("172.31.252.22")!
        moved[1].vtepMAC = MACAddress("0e:48:00:00:00:33")!
        let plan = OverlayPlan.make(peers: moved, current: state(for: peers), device: dev)
        #expect(plan.addFDB.count == 2 && plan.removeFDB.count == 2)
        #expect(plan.setNeighbours.map(\.ip) == [peers[1].vtepAddress], "a neighbour whose MAC changed is replaced in place")
        #expect(plan.removeNeighbours.isEmpty && plan.addRoutes.isEmpty && plan.removeRoutes.isEmpty)
        // a stale (not permanent) entry for a peer's address is made permanent again
        var s = state(for: peers)
        s.neighbours[0].state = 0x04  // NUD_STALE
        #expect(OverlayPlan.make(peers: peers, current: s, device: dev).setNeighbours.count == 1)
    }

    @Test func badPeerMapsAreRefusedWithOneLine() {
        func refused(_ peers: [OverlayNode], _ text: String) {
            do {
                try OverlayPlan.validate(node: me, peers: peers, config: Self.config)
                Issue.record("accepted: \(text)")
            } catch let e as HakoError {
                #expect(e.message.contains(text), "\(e.message)")
                #expect(!e.message.contains("\n"))
            } catch { Issue.record("\(error)") }
        }
        var outside = peers[0]; outside.subnet = IPv4Network("10.78.2.0/24")!
        refused([outside], "outside the cluster network")
        var overlapping = peers[0]; overlapping.subnet = IPv4Network("10.77.1.128/25")!
        refused([overlapping], "share the same subnet")
        var sameUnderlay = peers[0]; sameUnderlay.underlay = me.underlay
        refused([sameUnderlay], "underlay address")
        var sameMAC = peers[0]; sameMAC.vtepMAC = me.vtepMAC
        refused([sameMAC], "VTEP MAC")
        var multicast = peers[0]; multicast.vtepMAC = MACAddress("01:00:5e:00:00:01")!
        refused([multicast], "not a unicast")
        refused([peers[0], peers[0]], "share the same id")
        #expect(throws: Never.self) { try OverlayPlan.validate(node: me, peers: peers, config: Self.config) }
    }

    @Test func namesAndMTU() {
        #expect(Self.config.deviceName == "hako.vx42")
        #expect(OverlayConfig(vni: 16_777_215, clusterCIDR: Self.config.clusterCIDR).deviceName.utf8.count == 15)
        #expect(RouteRequest.isValidLinkName(OverlayConfig(vni: 16_777_215, clusterCIDR: Self.config.clusterCIDR).deviceName))
        #expect(OverlayConfig.mtu(underlay: 1500) == 1450 && OverlayConfig.mtu(underlay: 9000) == 8950)
        #expect(me.vtepMAC.description == "0e:48:ac:1f:fc:01" && !me.vtepMAC.isMulticast)
    }

    @Test func dumpRequestsAndParsers() throws {
        let fdbDump = hex(try RouteRequest.dumpNeighbours(family: AF_BRIDGE).bytes), routeDump = hex(try RouteRequest.dumpRoutes().bytes)
        #expect(fdbDump == Golden.fdbDump)
        #expect(routeDump == Golden.routeDump)
        // A neighbour reply as the kernel sends it: header, ndmsg, NDA_DST, NDA_LLADDR.
        var m = [UInt8](repeating: 0, count: 16)
        m[4] = UInt8(RTM_NEWNEIGH)
        m += [UInt8(AF_INET), 0, 0, 0, 7, 0, 0, 0, 0x80, 0, 0, 1]
        m += [8, 0, UInt8(NDA_DST), 0, 10, 77, 2, 0]
        m += [10, 0, UInt8(NDA_LLADDR), 0, 0x0e, 0x48, 0xac, 0x1f, 0xfc, 0x02, 0, 0]
        m[0] = UInt8(m.count)
        let n = try #require(RouteDump.neighbour(m))
        #expect(n.index == 7 && n.ip?.description == "10.77.2.0" && n.mac?.description == "0e:48:ac:1f:fc:02" && n.isPermanent)
        // truncated messages are not entries
        #expect(RouteDump.neighbour(Array(m.prefix(20))) == nil)
        #expect(RouteDump.route(Array(m.prefix(27))) == nil)
    }
}
