import CNftnl
import HakoSystem
import Testing
@testable import HakoNetwork

@Suite struct RoutingMeshBatchTests {
    let rules = OverlayRules(subnet: IPv4Network("10.77.1.0/24")!, clusterCIDR: IPv4Network("10.77.0.0/16")!, device: "hako.vx42",
                             services: [MeshService(name: "web", publishedPort: 8080,
                                                    endpoints: [MeshEndpoint(ip: IPv4Address("10.77.1.2")!, port: 80),
                                                                MeshEndpoint(ip: IPv4Address("10.77.2.2")!, port: 8080)]),
                                        MeshService(name: "idle", proto: .udp, publishedPort: 53, endpoints: [])])

    @Test func oneBatchRefillsTheTable() {
        let batch = OverlayNftables.apply(rules)
        #expect(batch.map { hex($0.bytes) } == Golden.meshBatch)
        let sub = UInt16(NFNL_SUBSYS_NFTABLES) << 8
        // begin, table, four chains, four flushes, two jumps, map + elements + rule per service with tasks, two masquerades, end
        #expect(batch.count == 1 + 1 + 4 + 4 + 2 + 3 + 2 + 1)
        #expect(batch[12].type == sub | UInt16(NFT_MSG_NEWSET.rawValue))
        #expect(batch[13].type == sub | UInt16(NFT_MSG_NEWSETELEM.rawValue))
        #expect(batch[14].type == sub | UInt16(NFT_MSG_NEWRULE.rawValue))
        #expect(batch[6...9].allSatisfy { $0.type == sub | UInt16(NFT_MSG_DELRULE.rawValue) }, "every chain is flushed")
        #expect(batch.dropFirst().dropLast().allSatisfy { $0.flags & UInt16(NLM_F_ACK) != 0 })
    }

    @Test func everyServiceGetsItsOwnMap() {
        var r = rules
        r.services[1].endpoints = [MeshEndpoint(ip: IPv4Address("10.77.3.5")!, port: 5353)]
        let batch = OverlayNftables.apply(r)
        #expect(batch.filter { $0.operation.hasPrefix("nftables map") && !$0.operation.hasSuffix("elements") }.map(\.operation)
                == ["nftables map 1", "nftables map 2"])
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
