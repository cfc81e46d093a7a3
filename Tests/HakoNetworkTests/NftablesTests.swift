import CNftnl
import Testing
@testable import HakoNetwork

@Suite struct NftablesBatchTests {
    let ruleset = NatRuleset(bridges: [BridgeRules(bridge: "hako0", subnet: IPv4Network("10.88.0.0/16")!)],
                             forwards: [PortForward(proto: .tcp, hostIP: nil, hostPort: 8080, containerIP: IPv4Address("10.88.0.2")!, containerPort: 80)])

    @Test func oneBatchRefillsTheTable() {
        let batch = NftablesBatch.apply(ruleset)
        #expect(batch.map { hex($0.bytes) } == Golden.nftBatch)
        // begin, table, five chains, five flushes, two jumps, one DNAT, three postrouting rules, end
        #expect(batch.count == 19)
        #expect(batch.first?.type == UInt16(NFNL_MSG_BATCH_BEGIN))
        #expect(batch.last?.type == UInt16(NFNL_MSG_BATCH_END))
        let sub = UInt16(NFNL_SUBSYS_NFTABLES) << 8
        #expect(batch[1].type == sub | UInt16(NFT_MSG_NEWTABLE.rawValue))
        #expect(batch[1].flags & UInt16(NLM_F_EXCL) == 0, "an existing table is fine")
        #expect(batch[2...6].allSatisfy { $0.type == sub | UInt16(NFT_MSG_NEWCHAIN.rawValue) })
        #expect(batch[7...11].allSatisfy { $0.type == sub | UInt16(NFT_MSG_DELRULE.rawValue) }, "every chain is flushed")
        #expect(batch[12...17].allSatisfy { $0.type == sub | UInt16(NFT_MSG_NEWRULE.rawValue) })
        // Every message but begin/end asks for an ack, so the transport knows when the kernel is done.
        #expect(batch.dropFirst().dropLast().allSatisfy { $0.flags & UInt16(NLM_F_ACK) != 0 })
    }

    @Test func isolationBetweenEveryPairOfNetworks() {
        var r = ruleset
        r.bridges.append(BridgeRules(bridge: "hako-1", subnet: IPv4Network("10.89.0.0/24")!))
        r.bridges.append(BridgeRules(bridge: "hako-2", subnet: IPv4Network("10.89.1.0/24")!, outbound: false))
        let batch = NftablesBatch.apply(r)
        let forwardRules = batch.filter { $0.operation == "nftables rule in forward" }
        #expect(forwardRules.count == 6)  // 3 × 2 ordered pairs
        let outbound = batch.filter { $0.operation == "nftables rule in postrouting" }
        #expect(outbound.count == 3 * 2 + 2)  // localhost + hairpin each, outbound for two
    }

    @Test func masqueradeSkipsTheExceptedDestinations() {
        var r = ruleset
        r.bridges[0].masqueradeExcept = [IPv4Network("10.77.0.0/16")!]
        let batch = NftablesBatch.apply(r)
        let post = batch.filter { $0.operation == "nftables rule in postrouting" }
        #expect(post.count == 3)
        // ip saddr 10.88.0.0/16 ip daddr != 10.77.0.0/16 oifname != "hako0" masquerade
        #expect(hex(post[2].bytes) == Golden.nftMasqueradeExcept)
        // Without exceptions the rule is the one of the golden batch.
        #expect(hex(NftablesBatch.apply(ruleset).filter { $0.operation == "nftables rule in postrouting" }[2].bytes) != hex(post[2].bytes))
        #expect(NftablesBatch.apply(ruleset).count == batch.count, "the exception is in the rule, not another rule")
    }

    @Test func removalIsIdempotent() {
        let batch = NftablesBatch.remove(table: "hako")
        #expect(batch.count == 4)
        #expect(hex(batch[1].bytes) == Golden.nftBatch[1])
        let sub = UInt16(NFNL_SUBSYS_NFTABLES) << 8
        #expect(batch[2].type == sub | UInt16(NFT_MSG_DELTABLE.rawValue))
    }
}
