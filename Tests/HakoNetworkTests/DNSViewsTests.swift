import HakoSystem
import Testing
@testable import HakoNetwork

/// Service discovery per network: a query is answered from the names of the
/// networks its sender is on, and never from another network's.
@Suite struct DNSViewsTests {
    static func ip(_ s: String) -> IPv4Address { IPv4Address(s)! }
    static let names: [String: [String: [IPv4Address]]] = [
        "cluster": ["web": [ip("10.88.1.2")], "web.1": [ip("10.88.1.2")]],
        "front": ["api": [ip("10.96.0.2"), ip("10.96.0.66")], "api.1": [ip("10.96.0.2")], "API-ALIAS.": [ip("10.96.0.2")],
                  "db": [ip("10.96.0.3")]],
        "back": ["db": [ip("10.96.16.2")], "db.1": [ip("10.96.16.2")], "cache": [ip("10.96.16.3")]],
    ]
    /// On this node: a container on front only, one on front then back, one on the cluster network and back.
    static let views = DNSViews(names: names,
                                members: [ip("10.96.0.2"): ["front"],
                                          ip("10.96.0.4"): ["front", "back"], ip("10.96.16.4"): ["front", "back"],
                                          ip("10.88.1.2"): ["cluster", "back"], ip("10.96.16.5"): ["cluster", "back"]],
                                ranges: [.init(IPv4Network("10.88.0.0/16")!, "cluster"), .init(IPv4Network("10.96.0.0/20")!, "front"),
                                         .init(IPv4Network("10.96.16.0/20")!, "back")],
                                fallback: "cluster")

    @Test func aContainerSeesOnlyItsNetworksNames() {
        let front = Self.views.records(for: Self.ip("10.96.0.2"))
        #expect(Set(front.keys) == ["api", "api.1", "api-alias", "db"], "aliases too, without case or the trailing dot")
        #expect(front["db"] == [Self.ip("10.96.0.3")])
        #expect(front["cache"] == nil && front["web"] == nil, "not back's, not the cluster's")
    }

    @Test func aContainerOnTwoNetworksSeesBothFromEitherAddress() {
        let both = Self.views.records(for: Self.ip("10.96.0.4"))
        #expect(both == Self.views.records(for: Self.ip("10.96.16.4")), "the same answers whichever gateway it asked")
        #expect(both["cache"] == [Self.ip("10.96.16.3")] && both["api"]?.count == 2)
        // A name on both: its first network's addresses (front's db, reachable on its first interface).
        #expect(both["db"] == [Self.ip("10.96.0.3")])
        let clusterAndBack = Self.views.records(for: Self.ip("10.96.16.5"))
        #expect(clusterAndBack["web"] != nil && clusterAndBack["db"] == [Self.ip("10.96.16.2")] && clusterAndBack["api"] == nil)
    }

    @Test func unknownSendersSeeTheNetworkOfTheirAddressElseTheFallback() {
        // A container started since the node's last look: its network by CIDR.
        #expect(Set(Self.views.records(for: Self.ip("10.96.16.9")).keys) == ["db", "db.1", "cache"])
        #expect(Set(Self.views.records(for: Self.ip("10.88.2.7")).keys) == ["web", "web.1"])
        #expect(Set(Self.views.records(for: Self.ip("192.0.2.1")).keys) == ["web", "web.1"], "the node itself: the cluster's")
        #expect(DNSViews(names: Self.names).records(for: Self.ip("10.96.0.2")).isEmpty, "no fallback: nothing")
    }

    @Test func oneViewForAll() {
        let v = DNSViews(records: ["Web.": [Self.ip("10.88.1.2")]])
        #expect(v.records(for: Self.ip("10.96.0.2")) == ["web": [Self.ip("10.88.1.2")]])
        #expect(v.records(for: Self.ip("127.0.0.1")) == ["web": [Self.ip("10.88.1.2")]])
    }

    /// What the responder decides for a query from each sender.
    @Test func theResponderAnswersBySender() throws {
        let query = try #require(DNSMessage.query(id: 7, name: "cache", type: DNSMessage.typeA))
        func rcode(_ from: String) -> UInt8? {
            guard case .reply(let bytes) = DNSResponder.decide(query, records: Self.views.records(for: Self.ip(from)), turn: 0, ttl: 0, forwarding: false),
                  bytes.count > 3 else { return nil }
            return bytes[3] & 0x0f
        }
        #expect(rcode("10.96.0.4") == 0, "on back: found")
        #expect(rcode("10.96.0.2") == 3, "front only: NXDOMAIN")
        #expect(rcode("10.88.1.9") == 3, "the cluster network only: NXDOMAIN")
        // Another network's name is not asked of the upstream resolvers; other names are.
        #expect(Self.views.known.contains("cache") && Self.views.known.contains("api-alias"))
        func forwarded(_ name: String) throws -> Bool {
            let q = try #require(DNSMessage.query(id: 8, name: name, type: DNSMessage.typeA))
            if case .forward = DNSResponder.decide(q, records: Self.views.records(for: Self.ip("10.96.0.2")), turn: 0, ttl: 0, forwarding: true,
                                                  withheld: Self.views.known) { return true }
            return false
        }
        #expect(try !forwarded("cache"))
        #expect(try forwarded("example.org"))
    }
}
