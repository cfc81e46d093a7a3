#if canImport(Glibc)
import Glibc
#endif
import CMnl
import CNftnl
import HakoSystem

/// A published port: traffic to the host's `hostPort` (on `hostIP`, or any local
/// address) goes to `containerIP:containerPort`.
public struct PortForward: Codable, Sendable, Hashable {
    public enum Proto: String, Codable, Sendable { case tcp, udp }
    public var proto: Proto
    public var hostIP: IPv4Address?
    public var hostPort: UInt16
    public var containerIP: IPv4Address
    public var containerPort: UInt16

    public init(proto: Proto, hostIP: IPv4Address?, hostPort: UInt16, containerIP: IPv4Address, containerPort: UInt16) {
        self.proto = proto; self.hostIP = hostIP; self.hostPort = hostPort
        self.containerIP = containerIP; self.containerPort = containerPort
    }
}

/// A bridge network as the firewall sees it.
public struct BridgeRules: Sendable, Equatable {
    public var bridge: String
    public var subnet: IPv4Network
    /// Masquerade traffic leaving through the host (false for internal networks).
    public var outbound: Bool
    /// Destinations reached without masquerade (routed with the container's own
    /// source address: the cluster CIDR across the overlay).
    public var masqueradeExcept: [IPv4Network]

    public init(bridge: String, subnet: IPv4Network, outbound: Bool = true, masqueradeExcept: [IPv4Network] = []) {
        self.bridge = bridge; self.subnet = subnet; self.outbound = outbound; self.masqueradeExcept = masqueradeExcept
    }
}

/// Everything hako's table holds; rebuilt whole in one atomic batch on each change.
public struct NatRuleset: Sendable, Equatable {
    public var table: String
    public var bridges: [BridgeRules]
    public var forwards: [PortForward]

    public init(table: String = "hako", bridges: [BridgeRules] = [], forwards: [PortForward] = []) {
        self.table = table; self.bridges = bridges; self.forwards = forwards
    }

    public var isEmpty: Bool { bridges.isEmpty && forwards.isEmpty }
}

/// Builds nftables batches with libnftnl: the table `ip <name>` and its chains
/// made if missing, every chain flushed and refilled (idempotent whether they
/// existed or not, atomic: one batch), or the table removed.
///
///     chain prerouting  { type nat hook prerouting priority -100; fib daddr type local jump ports }
///     chain output      { type nat hook output priority -100; fib daddr type local jump ports }
///     chain ports       { [ip daddr H] meta l4proto P th dport HP dnat to C:CP … }
///     chain postrouting { type nat hook postrouting priority 100;
///                         oifname BR ip saddr 127.0.0.0/8 masquerade      (localhost → container)
///                         oifname BR ct status dnat ip saddr NET masquerade (hairpin)
///                         ip saddr NET [ip daddr != EXCEPT …] oifname != BR masquerade } (outbound)
///     chain forward     { type filter hook forward priority 0; iifname A oifname B drop (A ≠ B) }
public enum NftablesBatch {
    public static func apply(_ r: NatRuleset) -> [NetlinkRequest] {
        var out: [NetlinkRequest] = [begin()]
        out.append(table(r.table, NFT_MSG_NEWTABLE, flags: NLM_F_CREATE | NLM_F_ACK))
        out.append(chain(r.table, "prerouting", type: "nat", hook: NF_INET_PRE_ROUTING.rawValue, priority: -100))
        out.append(chain(r.table, "output", type: "nat", hook: NF_INET_LOCAL_OUT.rawValue, priority: -100))
        out.append(chain(r.table, "ports", type: nil, hook: nil, priority: 0))
        out.append(chain(r.table, "postrouting", type: "nat", hook: NF_INET_POST_ROUTING.rawValue, priority: 100))
        out.append(chain(r.table, "forward", type: "filter", hook: NF_INET_FORWARD.rawValue, priority: 0))
        // Flush, then refill: the chains (and their hooks) stay, so the commit
        // never waits for the kernel to unhook a chain.
        for c in chains { out.append(flush(r.table, c)) }
        for c in ["prerouting", "output"] {
            out.append(rule(r.table, c) { $0.fibLocalDestination(); $0.verdict(NFT_JUMP.rawValue, chain: "ports") })
        }
        for f in r.forwards {
            out.append(rule(r.table, "ports") { e in
                if let h = f.hostIP, !h.isUnspecified { e.payloadEquals(base: NFT_PAYLOAD_NETWORK_HEADER, offset: 16, h.bytes) }
                e.l4proto(f.proto == .tcp ? UInt8(IPPROTO_TCP) : UInt8(IPPROTO_UDP))
                e.payloadEquals(base: NFT_PAYLOAD_TRANSPORT_HEADER, offset: 2, [UInt8(f.hostPort >> 8), UInt8(f.hostPort & 0xff)])
                e.dnat(f.containerIP, port: f.containerPort)
            })
        }
        let loopback = IPv4Network(IPv4Address(0x7f00_0000), prefix: 8)
        for b in r.bridges {
            out.append(rule(r.table, "postrouting") { e in
                e.interface(NFT_META_OIFNAME, b.bridge); e.sourceIn(loopback); e.masquerade()
            })
            out.append(rule(r.table, "postrouting") { e in
                e.interface(NFT_META_OIFNAME, b.bridge); e.conntrackDNAT(); e.sourceIn(b.subnet); e.masquerade()
            })
            if b.outbound {
                out.append(rule(r.table, "postrouting") { e in
                    e.sourceIn(b.subnet)
                    for x in b.masqueradeExcept { e.destinationIn(x, equal: false) }
                    e.interface(NFT_META_OIFNAME, b.bridge, equal: false); e.masquerade()
                })
            }
        }
        for a in r.bridges {
            for b in r.bridges where b.bridge != a.bridge {
                out.append(rule(r.table, "forward") { e in
                    e.interface(NFT_META_IIFNAME, a.bridge); e.interface(NFT_META_OIFNAME, b.bridge); e.verdict(NF_DROP)
                })
            }
        }
        out.append(end())
        return out
    }

    static let chains = ["prerouting", "output", "ports", "postrouting", "forward"]

    /// Removes the table (and everything in it) if it exists.
    public static func remove(table name: String) -> [NetlinkRequest] {
        [begin(), table(name, NFT_MSG_NEWTABLE, flags: NLM_F_CREATE | NLM_F_ACK), table(name, NFT_MSG_DELTABLE, flags: NLM_F_ACK), end()]
    }

    /// Asks for a table (outside a batch): the kernel answers ENOENT when there is none.
    public static func getTable(_ name: String) -> NetlinkRequest {
        table(name, NFT_MSG_GETTABLE, flags: NLM_F_ACK)
    }

    // MARK: - messages

    static func withBuffer(_ op: String, _ body: (UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<nlmsghdr>?) -> NetlinkRequest {
        let cap = Int(HAKO_MNL_SOCKET_BUFFER_SIZE)
        let buf = UnsafeMutablePointer<CChar>.allocate(capacity: cap)
        defer { buf.deallocate() }
        buf.initialize(repeating: 0, count: cap)
        guard let nlh = body(buf) else { return NetlinkRequest(bytes: [], operation: op) }
        let n = Int(nlh.pointee.nlmsg_len)
        return NetlinkRequest(bytes: Array(UnsafeRawBufferPointer(start: buf, count: n)), operation: op)
    }

    static func begin() -> NetlinkRequest { withBuffer("nftables batch") { nftnl_batch_begin($0, 0) } }
    static func end() -> NetlinkRequest { withBuffer("nftables batch") { nftnl_batch_end($0, 0) } }

    static func table(_ name: String, _ type: nf_tables_msg_types, flags: Int32) -> NetlinkRequest {
        withBuffer("nftables table \(name)") { buf in
            guard let t = nftnl_table_alloc() else { return nil }
            defer { nftnl_table_free(t) }
            nftnl_table_set_str(t, attr(NFTNL_TABLE_NAME), name)
            nftnl_table_set_u32(t, attr(NFTNL_TABLE_FAMILY), UInt32(NFPROTO_IPV4))
            let nlh = nftnl_nlmsg_build_hdr(buf, UInt16(type.rawValue), UInt16(NFPROTO_IPV4), UInt16(flags), 0)
            nftnl_table_nlmsg_build_payload(nlh, t)
            return nlh
        }
    }

    static func chain(_ table: String, _ name: String, type: String?, hook: UInt32?, priority: Int32) -> NetlinkRequest {
        withBuffer("nftables chain \(name)") { buf in
            guard let c = nftnl_chain_alloc() else { return nil }
            defer { nftnl_chain_free(c) }
            nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TABLE), table)
            nftnl_chain_set_str(c, attr(NFTNL_CHAIN_NAME), name)
            if let type, let hook {
                nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TYPE), type)
                nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_HOOKNUM), hook)
                nftnl_chain_set_s32(c, attr(NFTNL_CHAIN_PRIO), priority)
                nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_POLICY), UInt32(NF_ACCEPT))
            }
            let nlh = nftnl_nlmsg_build_hdr(buf, UInt16(NFT_MSG_NEWCHAIN.rawValue), UInt16(NFPROTO_IPV4),
                                            UInt16(NLM_F_CREATE | NLM_F_ACK), 0)
            nftnl_chain_nlmsg_build_payload(nlh, c)
            return nlh
        }
    }

    /// NFT_MSG_DELRULE without a handle: every rule of the chain.
    static func flush(_ table: String, _ chain: String) -> NetlinkRequest {
        withBuffer("nftables flush \(chain)") { buf in
            guard let r = nftnl_rule_alloc() else { return nil }
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), table)
            nftnl_rule_set_str(r, attr(NFTNL_RULE_CHAIN), chain)
            nftnl_rule_set_u32(r, attr(NFTNL_RULE_FAMILY), UInt32(NFPROTO_IPV4))
            let nlh = nftnl_nlmsg_build_hdr(buf, UInt16(NFT_MSG_DELRULE.rawValue), UInt16(NFPROTO_IPV4), UInt16(NLM_F_ACK), 0)
            nftnl_rule_nlmsg_build_payload(nlh, r)
            return nlh
        }
    }

    static func rule(_ table: String, _ chain: String, _ body: (inout Expressions) -> Void) -> NetlinkRequest {
        withBuffer("nftables rule in \(chain)") { buf in
            guard let r = nftnl_rule_alloc() else { return nil }
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), table)
            nftnl_rule_set_str(r, attr(NFTNL_RULE_CHAIN), chain)
            nftnl_rule_set_u32(r, attr(NFTNL_RULE_FAMILY), UInt32(NFPROTO_IPV4))
            var e = Expressions(rule: r)
            body(&e)
            let nlh = nftnl_nlmsg_build_hdr(buf, UInt16(NFT_MSG_NEWRULE.rawValue), UInt16(NFPROTO_IPV4),
                                            UInt16(NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK), 0)
            nftnl_rule_nlmsg_build_payload(nlh, r)
            return nlh
        }
    }
}

/// Appends nf_tables expressions to a rule (the rule owns them).
struct Expressions {
    let rule: OpaquePointer
    static let reg1 = UInt32(NFT_REG_1.rawValue)
    static let reg2 = UInt32(NFT_REG_2.rawValue)

    func add(_ name: String, _ body: (OpaquePointer) -> Void) {
        guard let e = nftnl_expr_alloc(name) else { return }
        body(e)
        nftnl_rule_add_expr(rule, e)
    }

    func set(_ e: OpaquePointer, _ attr: UInt16, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = nftnl_expr_set(e, attr, $0.baseAddress, UInt32($0.count)) }
    }

    func cmp(_ op: nft_cmp_ops, _ data: [UInt8], reg: UInt32 = reg1) {
        add("cmp") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_CMP_SREG), reg)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_CMP_OP), op.rawValue)
            set(e, attr(NFTNL_EXPR_CMP_DATA), data)
        }
    }

    func payload(base: nft_payload_bases, offset: UInt32, length: UInt32) {
        add("payload") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_PAYLOAD_DREG), Expressions.reg1)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_PAYLOAD_BASE), base.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_PAYLOAD_LEN), length)
        }
    }

    func bitwise(mask: [UInt8]) {
        add("bitwise") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_BITWISE_SREG), Expressions.reg1)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_BITWISE_DREG), Expressions.reg1)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_BITWISE_LEN), UInt32(mask.count))
            set(e, attr(NFTNL_EXPR_BITWISE_MASK), mask)
            set(e, attr(NFTNL_EXPR_BITWISE_XOR), [UInt8](repeating: 0, count: mask.count))
        }
    }

    /// `fib daddr type local`
    func fibLocalDestination() {
        add("fib") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_FIB_DREG), Expressions.reg1)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_FIB_RESULT), UInt32(NFT_FIB_RESULT_ADDRTYPE.rawValue))
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_FIB_FLAGS), UInt32(NFTA_FIB_F_DADDR.rawValue))
        }
        var local = UInt32(RTN_LOCAL)
        cmp(NFT_CMP_EQ, withUnsafeBytes(of: &local) { Array($0) })
    }

    /// `payload == bytes` (ip daddr, th dport …)
    func payloadEquals(base: nft_payload_bases, offset: UInt32, _ bytes: [UInt8]) {
        payload(base: base, offset: offset, length: UInt32(bytes.count))
        cmp(NFT_CMP_EQ, bytes)
    }

    /// `ip saddr NET`
    func sourceIn(_ net: IPv4Network) {
        payload(base: NFT_PAYLOAD_NETWORK_HEADER, offset: 12, length: 4)
        if net.prefix < 32 { bitwise(mask: IPv4Address(net.mask).bytes) }
        cmp(NFT_CMP_EQ, net.address.bytes)
    }

    /// `meta l4proto P`
    func l4proto(_ p: UInt8) {
        add("meta") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_META_KEY), NFT_META_L4PROTO.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_META_DREG), Expressions.reg1)
        }
        cmp(NFT_CMP_EQ, [p])
    }

    /// `iifname|oifname [!=] NAME` (exact: the name padded to IFNAMSIZ).
    func interface(_ key: nft_meta_keys, _ name: String, equal: Bool = true) {
        add("meta") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_META_KEY), key.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_META_DREG), Expressions.reg1)
        }
        var padded = Array(name.utf8.prefix(15))
        padded += [UInt8](repeating: 0, count: 16 - padded.count)
        cmp(equal ? NFT_CMP_EQ : NFT_CMP_NEQ, padded)
    }

    /// `ct status dnat`
    func conntrackDNAT() {
        add("ct") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_CT_KEY), NFT_CT_STATUS.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_CT_DREG), Expressions.reg1)
        }
        var mask = UInt32(IPS_DST_NAT.rawValue)
        bitwise(mask: withUnsafeBytes(of: &mask) { Array($0) })
        cmp(NFT_CMP_NEQ, [0, 0, 0, 0])
    }

    func masquerade() { add("masq") { _ in } }

    /// `dnat to IP:PORT`
    func dnat(_ ip: IPv4Address, port: UInt16) {
        add("immediate") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_IMM_DREG), Expressions.reg1)
            set(e, attr(NFTNL_EXPR_IMM_DATA), ip.bytes)
        }
        add("immediate") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_IMM_DREG), Expressions.reg2)
            set(e, attr(NFTNL_EXPR_IMM_DATA), [UInt8(port >> 8), UInt8(port & 0xff)])
        }
        add("nat") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_TYPE), NFT_NAT_DNAT.rawValue)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_FAMILY), UInt32(NFPROTO_IPV4))
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_REG_ADDR_MIN), Expressions.reg1)
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_NAT_REG_PROTO_MIN), Expressions.reg2)
        }
    }

    func verdict(_ v: Int32, chain: String? = nil) {
        add("immediate") { e in
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_IMM_DREG), UInt32(NFT_REG_VERDICT.rawValue))
            nftnl_expr_set_u32(e, attr(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: v))
            if let chain { nftnl_expr_set_str(e, attr(NFTNL_EXPR_IMM_CHAIN), chain) }
        }
    }
}

/// Applies batches (the real one: a NETLINK_NETFILTER socket).
public protocol NftablesTransport: AnyObject {
    func apply(_ batch: [NetlinkRequest]) throws
}

extension NetlinkSocket: NftablesTransport {
    public func apply(_ batch: [NetlinkRequest]) throws {
        try performBatch(batch, operation: "nftables")
    }
}

/// libnftnl attribute numbers come as named and anonymous C enums alike.
func attr<T: BinaryInteger>(_ v: T) -> UInt16 { UInt16(truncatingIfNeeded: v) }
func attr<T: RawRepresentable>(_ v: T) -> UInt16 where T.RawValue: BinaryInteger { UInt16(truncatingIfNeeded: v.rawValue) }

extension NetlinkSocket {
    /// A NETLINK_NETFILTER socket for nftables batches.
    public static func nftables(namespace: FileDescriptor? = nil) throws -> NetlinkSocket {
        try NetlinkSocket(protocol: NETLINK_NETFILTER, namespace: namespace)
    }
}
