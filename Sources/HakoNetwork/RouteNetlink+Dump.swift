#if canImport(Glibc)
import Glibc
#endif
import CMnl
import HakoSystem

/// Reading kernel state back: dumps of neighbours (ARP), bridge FDB entries,
/// routes and addresses, parsed into plain values. Used by the overlay's
/// reconciler (`Overlay`) to apply only the difference to what it wants.
///
///     RouteRequest.dumpNeighbours(family:)   RTM_GETNEIGH  AF_INET or AF_BRIDGE (FDB)
///     RouteRequest.dumpRoutes()              RTM_GETROUTE  AF_INET
///     RouteRequest.dumpAddresses()           RTM_GETADDR   AF_INET
///     RouteNetlink.neighbours(family:index:) / .routes() / .addresses()

/// A neighbour entry (AF_INET: IP → MAC) or a bridge FDB entry (AF_BRIDGE: MAC → remote `destination`).
public struct NeighbourEntry: Sendable, Hashable {
    public var index: UInt32
    public var ip: IPv4Address?
    public var mac: MACAddress?
    /// NUD_* bits.
    public var state: UInt16
    /// NTF_* bits.
    public var flags: UInt8

    public init(index: UInt32, ip: IPv4Address?, mac: MACAddress?, state: UInt16, flags: UInt8 = 0) {
        self.index = index; self.ip = ip; self.mac = mac; self.state = state; self.flags = flags
    }

    public var isPermanent: Bool { state & UInt16(HAKO_NUD_PERMANENT) != 0 }
}

/// An IPv4 route of the main (or another) table, as the kernel reports it.
public struct RouteEntry: Sendable, Hashable {
    public var destination: IPv4Network
    public var gateway: IPv4Address?
    public var outputIndex: UInt32?
    public var table: UInt32
    /// rtm_protocol: who installed it (RTPROT_KERNEL, RTPROT_BOOT, … hako's own value).
    public var routeProtocol: UInt8
    public var onLink: Bool

    public init(destination: IPv4Network, gateway: IPv4Address?, outputIndex: UInt32?, table: UInt32 = UInt32(RT_TABLE_MAIN.rawValue),
                routeProtocol: UInt8, onLink: Bool) {
        self.destination = destination; self.gateway = gateway; self.outputIndex = outputIndex
        self.table = table; self.routeProtocol = routeProtocol; self.onLink = onLink
    }
}

/// An IPv4 address on a link.
public struct AddressEntry: Sendable, Hashable {
    public var index: UInt32
    public var address: IPv4Address
    public var prefix: Int
}

extension RouteRequest {
    static let dump = NLM_F_REQUEST | NLM_F_DUMP

    /// RTM_GETNEIGH dump of one family: AF_INET (the ARP table) or AF_BRIDGE (FDB entries).
    public static func dumpNeighbours(family: Int32) throws -> NetlinkRequest {
        var b = MessageBuilder(type: RTM_GETNEIGH, flags: dump)
        var m = ndmsg()
        m.ndm_family = UInt8(family)
        b.extra(m)
        return try b.finish(family == AF_BRIDGE ? "list fdb entries" : "list neighbours")
    }

    /// RTM_GETLINK dump of every link (names only are read back).
    public static func dumpLinks() throws -> NetlinkRequest {
        var b = MessageBuilder(type: RTM_GETLINK, flags: dump)
        b.extra(linkHeader(up: nil))
        b.u32(IFLA_EXT_MASK, UInt32(RTEXT_FILTER_SKIP_STATS))
        return try b.finish("list links")
    }

    public static func dumpRoutes() throws -> NetlinkRequest {
        var b = MessageBuilder(type: RTM_GETROUTE, flags: dump)
        var m = rtmsg()
        m.rtm_family = UInt8(AF_INET)
        b.extra(m)
        return try b.finish("list routes")
    }

    public static func dumpAddresses() throws -> NetlinkRequest {
        var b = MessageBuilder(type: RTM_GETADDR, flags: dump)
        var m = ifaddrmsg()
        m.ifa_family = UInt8(AF_INET)
        b.extra(m)
        return try b.finish("list addresses")
    }

    /// A route owned by `routeProtocol`: added exclusively (a route someone else
    /// installed for the same destination is never replaced: EEXIST), deleted only
    /// if its protocol matches (the kernel compares rtm_protocol on delete).
    public static func ownedRoute(add: Bool, _ r: RouteEntry) throws -> NetlinkRequest {
        var b = MessageBuilder(type: add ? RTM_NEWROUTE : RTM_DELROUTE, flags: add ? create : plain)
        var m = rtmsg()
        m.rtm_family = UInt8(AF_INET)
        m.rtm_dst_len = UInt8(r.destination.prefix)
        m.rtm_table = UInt8(truncatingIfNeeded: r.table)
        m.rtm_protocol = r.routeProtocol
        m.rtm_scope = UInt8(r.gateway == nil ? RT_SCOPE_LINK.rawValue : RT_SCOPE_UNIVERSE.rawValue)
        m.rtm_type = UInt8(RTN_UNICAST)
        if r.onLink { m.rtm_flags = UInt32(RTNH_F_ONLINK) }
        b.extra(m)
        if r.destination.prefix > 0 { b.bytes(RTA_DST.rawValue, r.destination.address.bytes) }
        if let g = r.gateway { b.bytes(RTA_GATEWAY.rawValue, g.bytes) }
        if let i = r.outputIndex { b.u32(RTA_OIF.rawValue, i) }
        return try b.finish("\(add ? "add" : "delete") route \(r.destination)" + (r.gateway.map { " via \($0)" } ?? ""))
    }
}

/// Parsers of dump replies (pure: unit-tested on recorded bytes).
public enum RouteDump {
    static func u32(_ m: [UInt8], _ o: Int) -> UInt32 {
        UInt32(m[o]) | UInt32(m[o + 1]) << 8 | UInt32(m[o + 2]) << 16 | UInt32(m[o + 3]) << 24
    }
    static func type(_ m: [UInt8]) -> UInt16 { UInt16(m[4]) | UInt16(m[5]) << 8 }
    static func ipv4(_ v: [UInt8]?) -> IPv4Address? {
        guard let v, v.count == 4 else { return nil }
        return IPv4Address(UInt32(v[0]) << 24 | UInt32(v[1]) << 16 | UInt32(v[2]) << 8 | UInt32(v[3]))
    }

    /// ndmsg (12 bytes) after the 16-byte header: family, pad×3, ifindex, state u16, flags u8, type u8.
    public static func neighbour(_ m: [UInt8]) -> NeighbourEntry? {
        guard m.count >= 28, type(m) == UInt16(RTM_NEWNEIGH) else { return nil }
        let index = u32(m, 20)
        let state = UInt16(m[24]) | UInt16(m[25]) << 8
        let a = NetlinkAttributes(m, offset: 28)
        let mac = a.values[UInt16(NDA_LLADDR)].flatMap { $0.count == 6 ? MACAddress(bytes: $0) : nil }
        return NeighbourEntry(index: index, ip: ipv4(a.values[UInt16(NDA_DST)]), mac: mac, state: state, flags: m[26])
    }

    /// rtmsg (12 bytes): family, dst_len, src_len, tos, table, protocol, scope, type, flags u32.
    public static func route(_ m: [UInt8]) -> RouteEntry? {
        guard m.count >= 28, type(m) == UInt16(RTM_NEWROUTE), m[16] == UInt8(AF_INET) else { return nil }
        let a = NetlinkAttributes(m, offset: 28)
        let dst = ipv4(a.values[UInt16(RTA_DST.rawValue)]) ?? IPv4Address(0)
        let table = a.u32(RTA_TABLE.rawValue) ?? UInt32(m[20])
        // A multipath route has no RTA_OIF; it is never one of the overlay's.
        return RouteEntry(destination: IPv4Network(dst, prefix: Int(m[17])), gateway: ipv4(a.values[UInt16(RTA_GATEWAY.rawValue)]),
                          outputIndex: a.u32(RTA_OIF.rawValue), table: table, routeProtocol: m[21],
                          onLink: u32(m, 24) & UInt32(RTNH_F_ONLINK) != 0)
    }

    /// ifaddrmsg (8 bytes): family, prefixlen, flags, scope, index u32.
    public static func address(_ m: [UInt8]) -> AddressEntry? {
        guard m.count >= 24, type(m) == UInt16(RTM_NEWADDR), m[16] == UInt8(AF_INET) else { return nil }
        let a = NetlinkAttributes(m, offset: 24)
        guard let ip = ipv4(a.values[UInt16(IFA_LOCAL)] ?? a.values[UInt16(IFA_ADDRESS)]) else { return nil }
        return AddressEntry(index: u32(m, 20), address: ip, prefix: Int(m[17]))
    }
}

extension RouteNetlink {
    /// Neighbour (AF_INET) or FDB (AF_BRIDGE) entries, only those of link `index` if given.
    public func neighbours(family: Int32, index: UInt32? = nil) throws -> [NeighbourEntry] {
        try transport.perform(try RouteRequest.dumpNeighbours(family: family)).compactMap(RouteDump.neighbour)
            .filter { index == nil || $0.index == index }
    }

    /// The names of every link of the namespace.
    public func linkNames() throws -> [String] {
        try transport.perform(try RouteRequest.dumpLinks()).compactMap { m in
            guard m.count >= 32, RouteDump.type(m) == UInt16(RTM_NEWLINK) else { return nil }
            return NetlinkAttributes(m, offset: 32).string(IFLA_IFNAME)
        }
    }

    public func routes() throws -> [RouteEntry] {
        try transport.perform(try RouteRequest.dumpRoutes()).compactMap(RouteDump.route)
    }

    public func addresses() throws -> [AddressEntry] {
        try transport.perform(try RouteRequest.dumpAddresses()).compactMap(RouteDump.address)
    }

    /// Sets a link's MTU (the overlay's: underlay MTU − 50 on the bridge, the VXLAN device and container veths).
    public func setMTU(_ name: String, _ mtu: UInt32) throws {
        try set(name, LinkSettings(mtu: mtu))
    }
}
