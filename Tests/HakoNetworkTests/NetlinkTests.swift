import CMnl
#if canImport(Glibc)
import Glibc
#endif
import HakoSystem
import Testing
@testable import HakoNetwork

func hex(_ b: [UInt8]) -> String { b.map { let s = String($0, radix: 16); return s.count == 1 ? "0" + s : s }.joined() }

/// Attribute walk of a message (after the family header of `headerSize` bytes).
func attributes(_ m: [UInt8], header: Int) -> NetlinkAttributes { NetlinkAttributes(m, offset: 16 + header) }

@Suite struct NetlinkRequestTests {
    let mac = MACAddress("02:42:0a:58:00:02")

    @Test func vethWithPeerInANamespace() throws {
        let r = try RouteRequest.createLink("vethabc", kind: .veth(peer: "eth0", peerNamespaceFD: 7, peerMAC: mac),
                                            settings: LinkSettings(up: true, mtu: 1500, masterIndex: 4))
        #expect(hex(r.bytes) == Golden.veth)
        #expect(r.type == UInt16(RTM_NEWLINK))
        #expect(r.flags == UInt16(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL))
        let a = attributes(r.bytes, header: 16)
        #expect(a.string(IFLA_IFNAME) == "vethabc")
        #expect(a.u32(IFLA_MASTER) == 4)
        #expect(a.u32(IFLA_MTU) == 1500)
        // IFLA_LINKINFO → IFLA_INFO_DATA → VETH_INFO_PEER → ifinfomsg + attributes
        let info = try #require(a.values[UInt16(IFLA_LINKINFO)])
        let infoAttrs = NetlinkAttributes(info, offset: 0)
        #expect(infoAttrs.string(IFLA_INFO_KIND) == "veth")
        let data = NetlinkAttributes(try #require(infoAttrs.values[UInt16(IFLA_INFO_DATA)]), offset: 0)
        let peer = NetlinkAttributes(try #require(data.values[UInt16(VETH_INFO_PEER)]), offset: 16)
        #expect(peer.string(IFLA_IFNAME) == "eth0")
        #expect(peer.u32(IFLA_NET_NS_FD) == 7)
        #expect(peer.values[UInt16(IFLA_ADDRESS)] == mac?.bytes)
    }

    @Test func aNetworksMTUReachesBothEndsOfTheVethPair() throws {
        let r = try RouteRequest.createLink("vethabc", kind: .veth(peer: "eth0", peerNamespaceFD: 7, peerMAC: mac),
                                            settings: LinkSettings(up: true, mtu: 1450, masterIndex: 4))
        let a = attributes(r.bytes, header: 16)
        #expect(a.u32(IFLA_MTU) == 1450, "the host end")
        let info = NetlinkAttributes(try #require(a.values[UInt16(IFLA_LINKINFO)]), offset: 0)
        let data = NetlinkAttributes(try #require(info.values[UInt16(IFLA_INFO_DATA)]), offset: 0)
        let peer = NetlinkAttributes(try #require(data.values[UInt16(VETH_INFO_PEER)]), offset: 16)
        #expect(peer.u32(IFLA_MTU) == 1450, "the container's end")
    }

    @Test func linksOfEveryKind() throws {
        #expect(hex(try RouteRequest.createLink("hako0", kind: .bridge, settings: LinkSettings(up: true)).bytes) == Golden.bridge)
        let vx = try RouteRequest.createLink("hako.vx", kind: .vxlan(vni: 42, local: IPv4Address("192.168.1.10"), port: 4789, underlayIndex: 2, learning: false),
                                             settings: LinkSettings(mtu: 1450))
        #expect(hex(vx.bytes) == Golden.vxlan)
        #expect(hex(try RouteRequest.setLink("eth0", LinkSettings(up: true, mtu: 1400, mac: mac, namespaceFD: 9)).bytes) == Golden.set)
        #expect(hex(try RouteRequest.deleteLink("vethabc").bytes) == Golden.del)
        #expect(hex(try RouteRequest.getLink("lo").bytes) == Golden.get)
    }

    @Test func addressesRoutesNeighboursFDB() throws {
        let ip = try #require(IPv4Address("10.88.0.2"))
        #expect(hex(try RouteRequest.addAddress(index: 5, ip, prefix: 16).bytes) == Golden.addr)
        #expect(hex(try RouteRequest.route(add: true, destination: nil, gateway: IPv4Address("10.88.0.1"), index: 5).bytes) == Golden.route)
        #expect(hex(try RouteRequest.route(add: true, destination: IPv4Network("10.89.3.0/24"), gateway: IPv4Address("10.89.3.0"), index: 7, onLink: true).bytes) == Golden.route2)
        let vtep = try #require(MACAddress("0e:00:00:00:00:01"))
        #expect(hex(try RouteRequest.neighbour(add: true, index: 7, try #require(IPv4Address("10.89.3.0")), mac: vtep).bytes) == Golden.neigh)
        #expect(hex(try RouteRequest.fdb(add: true, index: 7, mac: vtep, destination: IPv4Address("192.168.1.11")).bytes) == Golden.fdb)
    }

    @Test func badNamesAreRefusedWithTheOperationNamed() {
        for bad in ["", "sixteen-chars-xx", "a/b", "a b", "..", "x:y"] {
            #expect(throws: NetlinkError.self) { try RouteRequest.createLink(bad, kind: .bridge) }
        }
        do {
            _ = try RouteRequest.deleteLink("a/b")
            Issue.record("accepted a bad name")
        } catch let e as NetlinkError {
            #expect(e.kind == .invalid)
            #expect(e.description.hasPrefix("delete link \"a/b\""))
        } catch { Issue.record("\(error)") }
    }

    @Test func kernelErrorsAreTyped() {
        #expect(NetlinkError(operation: "x", errno: 17).kind == .exists)
        #expect(NetlinkError(operation: "x", errno: 19).kind == .notFound)
        #expect(NetlinkError(operation: "create veth v", errno: 17).description == "create veth v: File exists")
    }

    /// The composed operations go through the transport in order; replies are parsed.
    @Test func operationsOverARecordingTransport() throws {
        final class Recorder: NetlinkTransport {
            var sent: [NetlinkRequest] = []
            func perform(_ r: NetlinkRequest) throws -> [[UInt8]] {
                sent.append(r)
                if r.type == UInt16(RTM_GETLINK) {
                    // RTM_NEWLINK reply: index 5, up, name eth0, mtu 1500
                    var m = [UInt8](repeating: 0, count: 32)
                    m[4] = UInt8(RTM_NEWLINK); m[20] = 5; m[24] = 1
                    m += [9, 0, 3, 0] + Array("eth0".utf8) + [0, 0, 0, 0]
                    m += [8, 0, 4, 0, 0xdc, 0x05, 0, 0]
                    m[0] = UInt8(m.count)
                    return [m]
                }
                if r.type == UInt16(RTM_DELLINK) { throw NetlinkError(operation: r.operation, errno: 19) }
                return []
            }
        }
        let t = Recorder()
        let rt = RouteNetlink(t)
        let l = try #require(try rt.link("eth0"))
        #expect(l.index == 5 && l.up && l.mtu == 1500 && l.name == "eth0")
        try rt.addAddress("eth0", try #require(IPv4Address("10.88.0.2")), prefix: 16)
        #expect(t.sent.last.map { hex($0.bytes) } == Golden.addr)
        try rt.delete("gone0")  // not found is fine for a delete
    }

    /// A container's interface: the pair in one request, the host end's
    /// look-up (its peer's index from IFLA_LINK), hairpin, and the namespace's
    /// side in one batch addressed by that index; an address already there is fine.
    @Test(arguments: [UInt32?.some(2), nil])
    func attachConfiguresTheNamespaceInOneBatch(peerLink: UInt32?) throws {
        final class Recorder: NetlinkTransport {
            var sent: [NetlinkRequest] = []
            var batches: [[NetlinkRequest]] = []
            let link: UInt32?
            init(link: UInt32?) { self.link = link }
            func perform(_ r: NetlinkRequest) throws -> [[UInt8]] {
                sent.append(r)
                if r.type == UInt16(RTM_NEWADDR) { throw NetlinkError(operation: r.operation, errno: EEXIST) }
                guard r.type == UInt16(RTM_GETLINK) else { return [] }
                // RTM_NEWLINK reply: index 9, up, IFLA_LINK unless it equals the index
                var m = [UInt8](repeating: 0, count: 32)
                m[4] = UInt8(RTM_NEWLINK); m[20] = 9; m[24] = 1
                if let link { m += [8, 0, UInt8(IFLA_LINK), 0, UInt8(link), 0, 0, 0] }
                m[0] = UInt8(m.count)
                return [m]
            }
            func performBatch(_ requests: [NetlinkRequest], operation: String, tolerating: [Int32]) throws {
                batches.append(requests)
                #expect(tolerating == [EEXIST])
                for r in requests { _ = try? perform(r) }
            }
        }
        let inside = Recorder(link: nil)
        let a = Attachment(networkID: "n", networkName: "bridge", bridge: "hako0", interface: "eth0", hostVeth: "vethabc",
                           ip: try #require(IPv4Address("10.88.0.2")), prefix: 16, gateway: try #require(IPv4Address("10.88.0.1")),
                           mac: try #require(mac), aliases: [])
        let hostWithPeer = Recorder(link: peerLink)
        try BridgeDriver(host: hostWithPeer).attach(a, bridgeIndex: 4, namespace: FileDescriptor(-1), inside: RouteNetlink(inside),
                                                    defaultRoute: true, mtu: 1500)
        #expect(hostWithPeer.sent.map(\.type) == [UInt16(RTM_NEWLINK), UInt16(RTM_GETLINK), UInt16(RTM_SETLINK)])
        #expect(attributes(hostWithPeer.sent[0].bytes, header: 16).u32(IFLA_MASTER) == 4)
        let peer = peerLink ?? 9
        let batch = try #require(inside.batches.first)
        #expect(inside.batches.count == 1)
        #expect(batch.map(\.type) == [UInt16(RTM_NEWLINK), UInt16(RTM_NEWLINK), UInt16(RTM_NEWADDR), UInt16(RTM_NEWROUTE)])
        #expect(attributes(batch[0].bytes, header: 16).string(IFLA_IFNAME) == "lo")
        #expect(attributes(batch[1].bytes, header: 16).string(IFLA_IFNAME) == "eth0")
        #expect(batch[2] == (try RouteRequest.addAddress(index: peer, a.ip, prefix: 16)))
        #expect(batch[3] == (try RouteRequest.route(add: true, destination: nil, gateway: a.gateway, index: peer)))
    }
}

@Suite struct AddressTests {
    @Test func parsing() {
        #expect(IPv4Address("10.88.0.2")?.value == 0x0a58_0002)
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.1.1.1", "a.b.c.d", "1.2.3.-4", " 1.2.3.4"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
        #expect(IPv4Network("10.88.0.0/16")?.prefix == 16)
        #expect(IPv4Network("10.88.0.1/16") == nil, "host bits set")
        #expect(IPv4Network("10.88.0.1/16", allowHostBits: true)?.address.description == "10.88.0.0")
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "x/8"] { #expect(IPv4Network(bad) == nil, "\(bad)") }
        #expect(MACAddress("02:42:AC:11:00:02")?.description == "02:42:ac:11:00:02")
        #expect(MACAddress("02:42:ac:11:00") == nil)
        #expect(MACAddress(derivedFrom: IPv4Address(0x0a58_0002)).description == "02:42:0a:58:00:02")
    }

    @Test func networks() throws {
        let n = try #require(IPv4Network("10.88.0.0/16"))
        #expect(n.contains(try #require(IPv4Address("10.88.255.1"))))
        #expect(!n.contains(try #require(IPv4Address("10.89.0.1"))))
        #expect(n.defaultGateway.description == "10.88.0.1")
        #expect(n.hostRange.upperBound == 0x0a58_fffe)
        #expect(n.overlaps(try #require(IPv4Network("10.88.4.0/24"))))
        #expect(!n.overlaps(try #require(IPv4Network("10.89.0.0/24"))))
    }
}
