#if canImport(Glibc)
import Glibc
#endif
import CMnl
import CNftnl
import HakoSystem

/// The overlay's nftables table on a node, `ip hako-overlay` (apart from the
/// engine's `ip hako`, so neither rewrite disturbs the other): outbound
/// masquerade for the node's subnet only when leaving the cluster CIDR, and the
/// routing mesh — every published service port answers on every local address
/// of every node and is balanced over the service's tasks wherever they run.
///
///     chain prerouting  { type nat hook prerouting priority -100; fib daddr type local jump services }
///     chain output      { type nat hook output priority -100; ip daddr != 127.0.0.0/8 fib daddr type local jump services }
///     chain services    { meta l4proto P th dport PORT dnat ip to numgen inc mod N map { 0 : IP0 . PORT0, 1 : … } … }
///     chain postrouting { type nat hook postrouting priority 100;
///                         ip saddr SUBNET ip daddr != CLUSTER masquerade     (leaving the cluster only)
///                         oifname VXLAN ct status dnat masquerade }           (mesh traffic sent to another node:
///                                                                              its replies come back through here)
///     chain input       { type filter hook input priority -10;
///                         udp dport VXLAN-PORT ip saddr != { PEER, … } counter drop }
///                                                   (the overlay is closed to strangers: VXLAN only from the
///                                                    current peers' underlay addresses; no peers: from nobody)
///     chain forward     { type filter hook forward priority 0;
///                         ct status dnat accept                           (published ports: open to all)
///                         iifname { BR_i, VX_i } oifname { BR_j, VX_j } drop  (i ≠ j) }
///                                                  (segments apart: a cluster network's bridge and VXLAN device
///                                                   reach only each other, never another network's, nor the
///                                                   cluster network's, on this node or across nodes)
///
/// Every change is one batch that flushes and refills the chains (the anonymous
/// maps and the peer set go with their rules), so a service's backends move
/// atomically, and the peers allowed to send VXLAN change with the peer map.
///
///     let mesh = RoutingMesh(transport: try NetlinkSocket.nftables(), base: OverlayRules(subnet: s, clusterCIDR: c, device: "hako.vx42",
///                                                                                       vxlan: VXLANPeers(port: 4789, peers: [peer1, peer2])))
///     try mesh.apply(services: [MeshService(name: "web", publishedPort: 8080, endpoints: [...])])
///     try mesh.remove()

/// A task's address and port behind a published port.
public struct MeshEndpoint: Sendable, Hashable, Codable {
    public var ip: IPv4Address
    public var port: UInt16
    public init(ip: IPv4Address, port: UInt16) { self.ip = ip; self.port = port }
}

/// A service port published on every node.
public struct MeshService: Sendable, Hashable, Codable {
    public var name: String
    public var proto: PortForward.Proto
    public var publishedPort: UInt16
    /// The running tasks, anywhere in the cluster; none: the port is not forwarded.
    public var endpoints: [MeshEndpoint]

    public init(name: String, proto: PortForward.Proto = .tcp, publishedPort: UInt16, endpoints: [MeshEndpoint]) {
        self.name = name; self.proto = proto; self.publishedPort = publishedPort; self.endpoints = endpoints
    }
}

/// The VXLAN filter's input: UDP to `port` is accepted only from `peers` (the
/// current peer map's underlay addresses, this node excluded); from anyone else
/// it is dropped before the kernel's VXLAN socket sees it.
public struct VXLANPeers: Sendable, Equatable {
    public var port: UInt16
    public var peers: [IPv4Address]

    public init(port: UInt16, peers: [IPv4Address]) {
        self.port = port
        self.peers = Array(Set(peers)).sorted()
    }
}

/// Everything the overlay table holds on one node.
public struct OverlayRules: Sendable, Equatable {
    public var table: String
    /// This node's container subnet.
    public var subnet: IPv4Network
    public var clusterCIDR: IPv4Network
    /// The VXLAN device (`OverlayConfig.deviceName`).
    public var device: String
    /// Who may send this node VXLAN: the overlay's UDP port and the other nodes' underlay addresses.
    public var vxlan: VXLANPeers
    public var services: [MeshService]
    /// The networks' bridges and VXLAN devices on this node, the cluster
    /// network's first: traffic never crosses from one segment to another.
    public var segments: [OverlaySegment]

    public init(table: String = "hako-overlay", subnet: IPv4Network, clusterCIDR: IPv4Network, device: String, vxlan: VXLANPeers,
                services: [MeshService] = [], segments: [OverlaySegment] = []) {
        self.table = table; self.subnet = subnet; self.clusterCIDR = clusterCIDR; self.device = device; self.vxlan = vxlan
        self.services = services
        self.segments = segments
    }

    /// The (in, out) link pairs dropped in the forward chain: every link of a
    /// segment toward every link of another, in a stable order.
    public var isolation: [(String, String)] {
        var out: [(String, String)] = []
        for a in segments {
            for b in segments where b != a {
                for from in [a.bridge, a.device] { for to in [b.bridge, b.device] { out.append((from, to)) } }
            }
        }
        return out
    }

    /// One clear error for the first bad service: a port 0, two services on one protocol and port, an endpoint port 0.
    public func validate() throws {
        var seen: [String: String] = [:]
        for s in services {
            guard s.publishedPort != 0 else { throw HakoError(.invalidArgument("published port"), "routing mesh: service \(s.name) publishes port 0") }
            let key = "\(s.proto.rawValue)/\(s.publishedPort)"
            if let other = seen[key] { throw HakoError(.conflict(.inUse(.port, key, by: [other, s.name])), "routing mesh: services \(other) and \(s.name) both publish \(key)") }
            seen[key] = s.name
            if let e = s.endpoints.first(where: { $0.port == 0 || $0.ip.isUnspecified }) {
                throw HakoError(.invalidArgument("endpoint"), "routing mesh: service \(s.name) has an invalid endpoint \(e.ip):\(e.port)")
            }
        }
    }
}

public enum OverlayNftables {
    static let chains = ["prerouting", "output", "services", "postrouting", "input", "forward"]

    /// The batch that makes the table what `r` says.
    public static func apply(_ r: OverlayRules) -> [NetlinkRequest] {
        let t = r.table
        var out: [NetlinkRequest] = [NftablesBatch.begin()]
        out.append(NftablesBatch.table(t, NFT_MSG_NEWTABLE, flags: NLM_F_CREATE | NLM_F_ACK))
        out.append(NftablesBatch.chain(t, "prerouting", type: "nat", hook: NF_INET_PRE_ROUTING.rawValue, priority: -100))
        out.append(NftablesBatch.chain(t, "output", type: "nat", hook: NF_INET_LOCAL_OUT.rawValue, priority: -100))
        out.append(NftablesBatch.chain(t, "services", type: nil, hook: nil, priority: 0))
        out.append(NftablesBatch.chain(t, "postrouting", type: "nat", hook: NF_INET_POST_ROUTING.rawValue, priority: 100))
        out.append(NftablesBatch.chain(t, "input", type: "filter", hook: NF_INET_LOCAL_IN.rawValue, priority: -10))
        out.append(NftablesBatch.chain(t, "forward", type: "filter", hook: NF_INET_FORWARD.rawValue, priority: 0))
        for c in chains { out.append(NftablesBatch.flush(t, c)) }
        out.append(NftablesBatch.rule(t, "prerouting") { $0.fibLocalDestination(); $0.verdict(NFT_JUMP.rawValue, chain: "services") })
        let loopback = IPv4Network(IPv4Address(0x7f00_0000), prefix: 8)
        out.append(NftablesBatch.rule(t, "output") { e in
            e.destinationIn(loopback, equal: false); e.fibLocalDestination(); e.verdict(NFT_JUMP.rawValue, chain: "services")
        })
        var setID: UInt32 = 1
        for s in r.services where !s.endpoints.isEmpty {
            out.append(anonymousMap(t, id: setID, s.endpoints))
            out.append(mapElements(t, id: setID, s.endpoints))
            let id = setID
            out.append(NftablesBatch.rule(t, "services") { e in
                e.l4proto(s.proto == .tcp ? UInt8(IPPROTO_TCP) : UInt8(IPPROTO_UDP))
                e.payloadEquals(base: NFT_PAYLOAD_TRANSPORT_HEADER, offset: 2, [UInt8(s.publishedPort >> 8), UInt8(s.publishedPort & 0xff)])
                e.dnatRoundRobin(count: UInt32(s.endpoints.count), set: "__map%d", setID: id)
            })
            setID += 1
        }
        out.append(NftablesBatch.rule(t, "postrouting") { e in
            e.sourceIn(r.subnet); e.destinationIn(r.clusterCIDR, equal: false); e.masquerade()
        })
        out.append(NftablesBatch.rule(t, "postrouting") { e in
            e.interface(NFT_META_OIFNAME, r.device); e.conntrackDNAT(); e.masquerade()
        })
        // VXLAN from strangers: dropped (and counted) before the VXLAN socket.
        let port = [UInt8(r.vxlan.port >> 8), UInt8(r.vxlan.port & 0xff)]
        if !r.vxlan.peers.isEmpty {
            out.append(addressSet(t, id: setID, r.vxlan.peers))
            out.append(setElements(t, id: setID, r.vxlan.peers))
        }
        let peersID = setID
        out.append(NftablesBatch.rule(t, "input") { e in
            e.l4proto(UInt8(IPPROTO_UDP))
            e.payloadEquals(base: NFT_PAYLOAD_TRANSPORT_HEADER, offset: 2, port)
            if !r.vxlan.peers.isEmpty { e.sourceNotIn(set: "__set%d", setID: peersID) }
            e.counter()
            e.verdict(NF_DROP)
        })
        // A published port (the mesh's, or one a node publishes) is open to every
        // segment: traffic it DNATed, and its replies, are not held apart.
        if !r.isolation.isEmpty {
            out.append(NftablesBatch.rule(t, "forward") { e in e.conntrackDNAT(); e.verdict(NF_ACCEPT) })
        }
        for (from, to) in r.isolation {
            out.append(NftablesBatch.rule(t, "forward") { e in
                e.interface(NFT_META_IIFNAME, from); e.interface(NFT_META_OIFNAME, to); e.counter(); e.verdict(NF_DROP)
            })
        }
        out.append(NftablesBatch.end())
        return out
    }

    /// Set flags of `… map { … }` written in a rule: anonymous, constant, a map.
    static let mapFlags = NFT_SET_ANONYMOUS.rawValue | NFT_SET_CONSTANT.rawValue | NFT_SET_MAP.rawValue
    /// nft's type ids: integer (key), ipv4_addr . inet_service (data: 7 << 6 | 13).
    static let keyType: UInt32 = 4, dataType: UInt32 = 7 << 6 | 13

    static func withSet(_ table: String, id: UInt32, name: String = "__map%d", _ body: (OpaquePointer) -> Void) -> OpaquePointer? {
        guard let s = nftnl_set_alloc() else { return nil }
        nftnl_set_set_str(s, attr(NFTNL_SET_TABLE), table)
        nftnl_set_set_str(s, attr(NFTNL_SET_NAME), name)
        nftnl_set_set_u32(s, attr(NFTNL_SET_ID), id)
        nftnl_set_set_u32(s, attr(NFTNL_SET_FAMILY), UInt32(NFPROTO_IPV4))
        body(s)
        return s
    }

    static func anonymousMap(_ table: String, id: UInt32, _ endpoints: [MeshEndpoint]) -> NetlinkRequest {
        NftablesBatch.withBuffer("nftables map \(id)") { buf in
            guard let s = withSet(table, id: id, { s in
                nftnl_set_set_u32(s, attr(NFTNL_SET_FLAGS), mapFlags)
                nftnl_set_set_u32(s, attr(NFTNL_SET_KEY_TYPE), keyType)
                nftnl_set_set_u32(s, attr(NFTNL_SET_KEY_LEN), 4)
                nftnl_set_set_u32(s, attr(NFTNL_SET_DATA_TYPE), dataType)
                nftnl_set_set_u32(s, attr(NFTNL_SET_DATA_LEN), 8)
                nftnl_set_set_u32(s, attr(NFTNL_SET_DESC_SIZE), UInt32(endpoints.count))
                // For `nft list` only: the key is host-endian (numgen), the data big-endian
                // (NFTNL_UDATA_SET_KEYBYTEORDER = 1, NFTNL_UDATA_SET_DATABYTEORDER = 2, as nft writes them).
                let udata: [UInt8] = [0, 4, 1, 0, 0, 0, 1, 4, 2, 0, 0, 0]
                udata.withUnsafeBytes { _ = nftnl_set_set_data(s, attr(NFTNL_SET_USERDATA), $0.baseAddress, UInt32($0.count)) }
            }) else { return nil }
            defer { nftnl_set_free(s) }
            let nlh = nftnl_nlmsg_build_hdr(buf, UInt16(NFT_MSG_NEWSET.rawValue), UInt16(NFPROTO_IPV4), UInt16(NLM_F_CREATE | NLM_F_ACK), 0)
            nftnl_set_nlmsg_build_payload(nlh, s)
            return nlh
        }
    }

    /// Elements `i : ip . port`: the key a host-order u32 (numgen's result), the data
    /// the address and the port in network order, padded to 8 bytes (two registers).
    static func mapElements(_ table: String, id: UInt32, _ endpoints: [MeshEndpoint]) -> NetlinkRequest {
        NftablesBatch.withBuffer("nftables map \(id) elements") { buf in
            guard let s = withSet(table, id: id, { _ in }) else { return nil }
            defer { nftnl_set_free(s) }
            for (i, ep) in endpoints.enumerated() {
                guard let e = nftnl_set_elem_alloc() else { continue }
                var key = UInt32(i)
                withUnsafeBytes(of: &key) { _ = nftnl_set_elem_set(e, attr(NFTNL_SET_ELEM_KEY), $0.baseAddress, 4) }
                let data = ep.ip.bytes + [UInt8(ep.port >> 8), UInt8(ep.port & 0xff), 0, 0]
                data.withUnsafeBytes { _ = nftnl_set_elem_set(e, attr(NFTNL_SET_ELEM_DATA), $0.baseAddress, 8) }
                nftnl_set_elem_add(s, e)
            }
            let nlh = nftnl_nlmsg_build_hdr(buf, UInt16(NFT_MSG_NEWSETELEM.rawValue), UInt16(NFPROTO_IPV4), UInt16(NLM_F_CREATE | NLM_F_ACK), 0)
            nftnl_set_elems_nlmsg_build_payload(nlh, s)
            return nlh
        }
    }
}

extension OverlayNftables {
    /// nft's type id of ipv4_addr.
    static let addressType: UInt32 = 7

    /// `{ A, B, … }` of IPv4 addresses written in a rule: anonymous, constant.
    static func addressSet(_ table: String, id: UInt32, _ addresses: [IPv4Address]) -> NetlinkRequest {
        NftablesBatch.withBuffer("nftables set \(id)") { buf in
            guard let s = withSet(table, id: id, name: "__set%d", { s in
                nftnl_set_set_u32(s, attr(NFTNL_SET_FLAGS), NFT_SET_ANONYMOUS.rawValue | NFT_SET_CONSTANT.rawValue)
                nftnl_set_set_u32(s, attr(NFTNL_SET_KEY_TYPE), addressType)
                nftnl_set_set_u32(s, attr(NFTNL_SET_KEY_LEN), 4)
                nftnl_set_set_u32(s, attr(NFTNL_SET_DESC_SIZE), UInt32(addresses.count))
            }) else { return nil }
            defer { nftnl_set_free(s) }
            let nlh = nftnl_nlmsg_build_hdr(buf, UInt16(NFT_MSG_NEWSET.rawValue), UInt16(NFPROTO_IPV4), UInt16(NLM_F_CREATE | NLM_F_ACK), 0)
            nftnl_set_nlmsg_build_payload(nlh, s)
            return nlh
        }
    }

    static func setElements(_ table: String, id: UInt32, _ addresses: [IPv4Address]) -> NetlinkRequest {
        NftablesBatch.withBuffer("nftables set \(id) elements") { buf in
            guard let s = withSet(table, id: id, name: "__set%d", { _ in }) else { return nil }
            defer { nftnl_set_free(s) }
            for a in addresses {
                guard let e = nftnl_set_elem_alloc() else { continue }
                a.bytes.withUnsafeBytes { _ = nftnl_set_elem_set(e, attr(NFTNL_SET_ELEM_KEY), $0.baseAddress, 4) }
                nftnl_set_elem_add(s, e)
            }
            let nlh = nftnl_nlmsg_build_hdr(buf, UInt16(NFT_MSG_NEWSETELEM.rawValue), UInt16(NFPROTO_IPV4), UInt16(NLM_F_CREATE | NLM_F_ACK), 0)
            nftnl_set_elems_nlmsg_build_payload(nlh, s)
            return nlh
        }
    }
}

extension Expressions {
    /// `ip saddr != @set`
    func sourceNotIn(set: String, setID: UInt32) {
        payload(base: NFT_PAYLOAD_NETWORK_HEADER, offset: 12, length: 4)
        add("lookup") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_SREG), Expressions.reg1)
            nftnl_expr_set_str(e, attr(NFTNL_EXPR_LOOKUP_SET), set)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_SET_ID), setID)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_FLAGS), UInt32(NFT_LOOKUP_F_INV.rawValue))
        }
    }

    /// `counter`
    func counter() { add("counter") { _ in } }

    /// `ip daddr [!=] NET`
    func destinationIn(_ net: IPv4Network, equal: Bool = true) {
        payload(base: NFT_PAYLOAD_NETWORK_HEADER, offset: 16, length: 4)
        if net.prefix < 32 { bitwise(mask: IPv4Address(net.mask).bytes) }
        cmp(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, net.address.bytes)
    }

    /// `dnat ip to numgen inc mod N map @set`: the map's data (address . port) lands in
    /// reg 1; the port is its second 32-bit word (NFT_REG32_01).
    func dnatRoundRobin(count: UInt32, set: String, setID: UInt32) {
        add("numgen") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NG_DREG), Expressions.reg1)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NG_MODULUS), count)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NG_TYPE), NFT_NG_INCREMENTAL.rawValue)
        }
        add("lookup") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_SREG), Expressions.reg1)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_DREG), Expressions.reg1)
            nftnl_expr_set_str(e, attr(NFTNL_EXPR_LOOKUP_SET), set)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_LOOKUP_SET_ID), setID)
        }
        add("nat") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_TYPE), NFT_NAT_DNAT.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_FAMILY), UInt32(NFPROTO_IPV4))
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_REG_ADDR_MIN), Expressions.reg1)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_REG_PROTO_MIN), UInt32(NFT_REG32_01.rawValue))
        }
    }
}

/// The overlay table on one node, applied through an nftables transport.
public final class RoutingMesh: @unchecked Sendable {
    let transport: any NftablesTransport
    public let base: OverlayRules

    /// `base`: the table name, subnet, cluster CIDR and device (its services are ignored).
    public init(transport: any NftablesTransport, base: OverlayRules) {
        self.transport = transport; self.base = base
    }

    /// Replaces the services (and makes the table if missing) in one atomic batch.
    public func apply(services: [MeshService]) throws {
        var r = base
        r.services = services
        try r.validate()
        try transport.apply(OverlayNftables.apply(r))
    }

    /// Removes the table if it exists.
    public func remove() throws { try transport.apply(NftablesBatch.remove(table: base.table)) }
}
