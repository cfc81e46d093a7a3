import Foundation
@testable import HakoCluster
import Testing

/// The coordinator's side of the overlay: the peer map it sends, when.
@Suite struct OverlayMapTests {
    @Test func everyLiveNodeGetsTheMapWhenItChanges() throws {
        let f = try CoreFixture()
        let nodes = try (1...3).map { try SimNode(f, name: "n\($0)", underlay: "10.0.0.\($0)") }
        try settle(f, nodes)
        let map = f.core.peerMap()
        #expect(map.map(\.underlay).sorted() == ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        #expect(Set(map.map(\.subnet)) == ["10.88.0.0/24", "10.88.1.0/24", "10.88.2.0/24"])
        for n in nodes {
            #expect(n.overlays.last?.peers == map, "\(n.name) holds the current map")
            #expect(n.overlays.last?.vni == OverlayMessage.defaultVNI && n.overlays.last?.clusterCIDR == "10.88.0.0/16")
        }
        // Nothing changes: nothing is sent again.
        let counts = nodes.map(\.overlays.count)
        f.clock.advance(0.5)
        for n in nodes { try n.heartbeat() }
        try settle(f, nodes)
        #expect(nodes.map(\.overlays.count) == counts)
        // A node goes down: the others get a map without it.
        nodes[0].disconnect()
        for _ in 0..<10 {
            f.clock.advance(0.5)
            try nodes[1].heartbeat(); try nodes[2].heartbeat()
            try settle(f, Array(nodes.dropFirst()))
        }
        #expect(f.core.peerMap().map(\.name).sorted() == ["n2", "n3"])
        #expect(nodes[1].overlays.last?.peers.map(\.name).sorted() == ["n2", "n3"])
        // Back: a new session gets the map at once, and the others learn of it.
        try nodes[0].connect()
        try settle(f, nodes)
        #expect(nodes[0].overlays.last?.peers.count == 3 && nodes[2].overlays.last?.peers.count == 3)
    }

    @Test func underlayHostsAreIPv4Only() {
        #expect(NodeRecord.underlayHost(of: "10.1.2.3:4270") == "10.1.2.3")
        #expect(NodeRecord.underlayHost(of: "[fe80::1]:4270") == nil)
        #expect(NodeRecord.underlayHost(of: "x") == nil)
        #expect(NodeRecord.underlayHost(of: "127.0.0.1:4270") == nil, "an agent beside the coordinator stays out of the overlay")
    }
}

/// The agent's side before any peer map: the network options from the
/// cluster CIDR of its session and its own underlay address.
@Suite struct ClusterNetworkOptionsTests {
    /// This machine's first non-loopback IPv4 address and its interface.
    static func hostAddress() -> (address: String, interface: String)? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(first) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let a = p {
            defer { p = a.pointee.ifa_next }
            guard let sa = a.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            let ip = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
            let b = withUnsafeBytes(of: ip) { Array($0) }
            guard b[0] != 127 else { continue }
            return (b.map(String.init).joined(separator: "."), String(cString: a.pointee.ifa_name))
        }
        return nil
    }

    @Test func beforeTheFirstPeerMap() throws {
        #expect(ClusterNetworkOptions.from(clusterCIDR: "10.88.0.0/16", underlay: "127.0.0.1") == nil, "beside the coordinator: no overlay")
        #expect(ClusterNetworkOptions.from(clusterCIDR: "not a cidr", underlay: "10.0.0.1") == nil)
        guard let (address, interface) = Self.hostAddress(),
              let mtu = (try? String(contentsOfFile: "/sys/class/net/\(interface)/mtu", encoding: .utf8)).flatMap({ UInt32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        else { return }
        let o = try #require(ClusterNetworkOptions.from(clusterCIDR: "10.88.0.0/16", underlay: address))
        #expect(o.clusterCIDR.description == "10.88.0.0/16")
        #expect(o.mtu == mtu - 50, "\(interface) (\(address)) has MTU \(mtu)")
    }
}
