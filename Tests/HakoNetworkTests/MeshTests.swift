import CNftnl
import HakoSystem
import Testing
@testable import HakoNetwork

@Suite struct RoutingMeshBatchTests {
    let rules = OverlayRules(subnet: IPv4Network("10.77.1.0/24")!, clusterCIDR: IPv4Network("10.77.0.0/16")!, device: "hako.vx42",
                             vxlan: VXLANPeers(port: 4789, peers: [IPv4Address("172.31.252.3")!, IPv4Address("172.31.252.2")!]),
                             services: [MeshService(name: "web", publishedPort: 8080,
                                                    endpoints: [MeshEndpoint(ip: IPv4Address("10.77.1.2")!, port: 80),
                                                                MeshEndpoint(ip: IPv4Address("10.77.2.2")!, port: 8080)]),
                                        MeshService(name: "idle", proto: .udp, publishedPort: 53, endpoints: [])])

    @Test func oneBatchRefillsTheTable() {
        let batch = OverlayNftables.apply(rules)
        #expect(batch.map { hex($0.bytes) } == Golden.meshBatch)
        let sub = UInt16(NFNL_SUBSYS_NFTABLES) << 8
        // begin, table, five chains, five flushes, two jumps, map + elements + rule per service with tasks, two masquerades,
        // the peer set + its elements + the VXLAN filter, end
        #expect(batch.count == 1 + 1 + 5 + 5 + 2 + 3 + 2 + 3 + 1)
        #expect(batch[14].type == sub | UInt16(NFT_MSG_NEWSET.rawValue))
        #expect(batch[15].type == sub | UInt16(NFT_MSG_NEWSETELEM.rawValue))
        #expect(batch[16].type == sub | UInt16(NFT_MSG_NEWRULE.rawValue))
        #expect(batch[7...11].allSatisfy { $0.type == sub | UInt16(NFT_MSG_DELRULE.rawValue) }, "every chain is flushed")
        #expect(batch[19].type == sub | UInt16(NFT_MSG_NEWSET.rawValue) && batch[19].operation == "nftables set 2")
        #expect(batch[20].type == sub | UInt16(NFT_MSG_NEWSETELEM.rawValue))
        #expect(batch[21].operation == "nftables rule in input")
        #expect(batch.dropFirst().dropLast().allSatisfy { $0.flags & UInt16(NLM_F_ACK) != 0 })
    }

    /// VXLAN from the peers only: the set holds exactly their addresses (sorted,
    /// once each); with no peers the port is closed to everyone.
    @Test func vxlanIsAcceptedFromThePeersOnly() {
        #expect(rules.vxlan.peers.map(\.description) == ["172.31.252.2", "172.31.252.3"])
        #expect(VXLANPeers(port: 4789, peers: [IPv4Address("10.0.0.1")!, IPv4Address("10.0.0.1")!]).peers.count == 1)
        var alone = rules
        alone.vxlan = VXLANPeers(port: 8472, peers: [])
        let batch = OverlayNftables.apply(alone)
        #expect(!batch.contains { $0.operation.hasPrefix("nftables set") }, "no set without peers")
        #expect(batch.count == 1 + 1 + 5 + 5 + 2 + 3 + 2 + 1 + 1)
        // The port is the configured one, in network order, in the filter rule.
        let filter = batch[batch.count - 2]
        #expect(filter.operation == "nftables rule in input")
        #expect(hex(filter.bytes).contains("2118"), "8472 = 0x2118")
        #expect(!hex(batch[batch.count - 2].bytes).contains("12b5"))
    }

    @Test func everyServiceGetsItsOwnMap() {
        var r = rules
        r.services[1].endpoints = [MeshEndpoint(ip: IPv4Address("10.77.3.5")!, port: 5353)]
        let batch = OverlayNftables.apply(r)
        #expect(batch.filter { $0.operation.hasPrefix("nftables map") && !$0.operation.hasSuffix("elements") }.map(\.operation)
                == ["nftables map 1", "nftables map 2"])
        #expect(batch.contains { $0.operation == "nftables set 3" }, "the peer set takes the next id")
    }

    @Test func badServicesAreRefused() {
        var r = rules
        r.services.append(MeshService(name: "web2", publishedPort: 8080, endpoints: []))
        #expect(throws: HakoError.self) { try r.validate() }
        r.services = [MeshService(name: "zero", publishedPort: 0, endpoints: [])]
        #expect(throws: HakoError.self) { try r.validate() }
        r.services = [MeshService(name: "ep", publishedPort: 80, endpoints: [MeshEndpoint(ip: IPv4Address("10.77.1.2")!, port: 0)])]
        #expect(throws: HakoError.self) { try r.validate() }
        #expect(throws: Never.self) { try rules.validate() }
    }
}
