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
        // The forward chain (made and flushed, empty without cluster networks) besides the rest as before.
        let forward = ["nftables chain forward", "nftables flush forward"]
        #expect(batch.filter { !forward.contains($0.operation) }.map { hex($0.bytes) } == Golden.meshBatch)
        #expect(batch[7].operation == "nftables chain forward" && batch[13].operation == "nftables flush forward")
        #expect(hex(batch[7].bytes) == Golden.overlayForwardChain)
        #expect(!batch.contains { $0.operation == "nftables rule in forward" }, "one segment: nothing to keep apart")
        let sub = UInt16(NFNL_SUBSYS_NFTABLES) << 8
        // begin, table, six chains, six flushes, two jumps, map + elements + rule per service with tasks, two masquerades,
        // the peer set + its elements + the VXLAN filter, end
        #expect(batch.count == 1 + 1 + 6 + 6 + 2 + 3 + 2 + 3 + 1)
        #expect(batch[16].type == sub | UInt16(NFT_MSG_NEWSET.rawValue))
        #expect(batch[17].type == sub | UInt16(NFT_MSG_NEWSETELEM.rawValue))
        #expect(batch[18].type == sub | UInt16(NFT_MSG_NEWRULE.rawValue))
        #expect(batch[8...13].allSatisfy { $0.type == sub | UInt16(NFT_MSG_DELRULE.rawValue) }, "every chain is flushed")
        #expect(batch[21].type == sub | UInt16(NFT_MSG_NEWSET.rawValue) && batch[21].operation == "nftables set 2")
        #expect(batch[22].type == sub | UInt16(NFT_MSG_NEWSETELEM.rawValue))
        #expect(batch[23].operation == "nftables rule in input")
        #expect(batch.dropFirst().dropLast().allSatisfy { $0.flags & UInt16(NLM_F_ACK) != 0 })
    }

    /// Cluster networks: each segment's bridge and VXLAN device reach only
    /// each other — every link of one toward every link of another is
    /// dropped in the forward chain, after traffic of published ports is let through.
    @Test func segmentsAreKeptApart() {
        var r = rules
        r.segments = [OverlaySegment(bridge: "hakoc0", device: "hako.vx42"), OverlaySegment(bridge: "hako.br4097", device: "hako.vx4097"),
                      OverlaySegment(bridge: "hako.br4098", device: "hako.vx4098")]
        #expect(r.isolation.count == 3 * 2 * 4)
        #expect(r.isolation.prefix(4).map { "\($0.0)>\($0.1)" } == ["hakoc0>hako.br4097", "hakoc0>hako.vx4097", "hako.vx42>hako.br4097", "hako.vx42>hako.vx4097"])
        #expect(!r.isolation.contains { a in r.segments.contains { $0.bridge == a.0 && $0.device == a.1 || $0.device == a.0 && $0.bridge == a.1 } },
                "a segment's own bridge and device are never apart")
        #expect(!r.isolation.contains { $0.0 == $0.1 })
        let batch = OverlayNftables.apply(r)
        let forward = batch.filter { $0.operation == "nftables rule in forward" }
        #expect(forward.count == 1 + 24)
        #expect(hex(forward[0].bytes) == Golden.overlayForwardDNAT, "ct status dnat accept, first")
        #expect(hex(forward[1].bytes) == Golden.overlayForwardDrop, "iifname hakoc0 oifname hako.br4097 counter drop")
        #expect(batch.last?.operation == "nftables batch")
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
        #expect(batch.count == 1 + 1 + 6 + 6 + 2 + 3 + 2 + 1 + 1)
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
