#if canImport(Glibc)
import Glibc
#endif
import CMnl
import HakoSystem

/// What a link is when it is created.
public enum LinkKind: Sendable, Equatable {
    /// A veth pair: the peer's name, and the namespace (an open fd) it is created in.
    case veth(peer: String, peerNamespaceFD: Int32?, peerMAC: MACAddress?)
    case bridge
    /// A VXLAN device: network id, local address, UDP port, underlay device index, learning.
    case vxlan(vni: UInt32, local: IPv4Address?, port: UInt16, underlayIndex: UInt32?, learning: Bool)
}

/// Settings applied to a link when it is created or changed; nil fields are left alone.
public struct LinkSettings: Sendable, Equatable {
    public var up: Bool?
    public var mtu: UInt32?
    public var mac: MACAddress?
    /// The bridge's index (0 detaches).
    public var masterIndex: UInt32?
    /// Moves the link into this network namespace (an open fd).
    public var namespaceFD: Int32?
    public var newName: String?

    public init(up: Bool? = nil, mtu: UInt32? = nil, mac: MACAddress? = nil, masterIndex: UInt32? = nil,
                namespaceFD: Int32? = nil, newName: String? = nil) {
        self.up = up; self.mtu = mtu; self.mac = mac; self.masterIndex = masterIndex
        self.namespaceFD = namespaceFD; self.newName = newName
    }
}

/// Pure builders of rtnetlink requests (links, addresses, routes, neighbours,
/// bridge FDB). Every one is checked byte for byte against golden messages.
public enum RouteRequest {
    static let create = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    static let replace = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    static let plain = NLM_F_REQUEST | NLM_F_ACK

    /// Link names the kernel accepts: 1 to 15 bytes, no "/", ":" or white space.
    public static func isValidLinkName(_ name: String) -> Bool {
        let b = Array(name.utf8)
        return !b.isEmpty && b.count < Int(HAKO_IFNAMSIZ) && name != "." && name != ".."
            && !b.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 >= 0x7f }
    }

    static func checkName(_ name: String, _ op: String) throws {
        if !isValidLinkName(name) { throw NetlinkError(operation: "\(op) \"\(name)\"", errno: EINVAL) }
    }

    static func linkHeader(index: Int32 = 0, up: Bool?) -> ifinfomsg {
        var m = ifinfomsg()
        m.ifi_family = UInt8(AF_UNSPEC)
        m.ifi_index = index
        if let up {
            m.ifi_change = UInt32(HAKO_IFF_UP)
            m.ifi_flags = up ? UInt32(HAKO_IFF_UP) : 0
        }
        return m
    }

    static func put(_ s: LinkSettings, into b: inout MessageBuilder) {
        if let mtu = s.mtu { b.u32(IFLA_MTU, mtu) }
        if let mac = s.mac { b.bytes(IFLA_ADDRESS, mac.bytes) }
        if let m = s.masterIndex { b.u32(IFLA_MASTER, m) }
        if let fd = s.namespaceFD { b.u32(IFLA_NET_NS_FD, UInt32(bitPattern: fd)) }
    }

    /// RTM_NEWLINK with NLM_F_CREATE|NLM_F_EXCL: a new link of `kind`.
    public static func createLink(_ name: String, kind: LinkKind, settings: LinkSettings = LinkSettings()) throws -> NetlinkRequest {
        try checkName(name, "create link")
        var b = MessageBuilder(type: RTM_NEWLINK, flags: create)
        b.extra(linkHeader(up: settings.up))
        b.string(IFLA_IFNAME, name)
        put(settings, into: &b)
        let kindName: String
        switch kind {
        case .veth(let peer, let ns, let mac):
            try checkName(peer, "create veth peer")
            kindName = "veth"
            b.nest(IFLA_LINKINFO) { b in
                b.string(IFLA_INFO_KIND, "veth")
                b.nest(IFLA_INFO_DATA) { b in
                    b.nest(VETH_INFO_PEER) { b in
                        b.extra(linkHeader(up: nil))
                        b.string(IFLA_IFNAME, peer)
                        if let mtu = settings.mtu { b.u32(IFLA_MTU, mtu) }
                        if let mac { b.bytes(IFLA_ADDRESS, mac.bytes) }
                        if let ns { b.u32(IFLA_NET_NS_FD, UInt32(bitPattern: ns)) }
                    }
                }
            }
        case .bridge:
            kindName = "bridge"
            b.nest(IFLA_LINKINFO) { b in b.string(IFLA_INFO_KIND, "bridge") }
        case .vxlan(let vni, let local, let port, let underlay, let learning):
            kindName = "vxlan"
            b.nest(IFLA_LINKINFO) { b in
                b.string(IFLA_INFO_KIND, "vxlan")
                b.nest(IFLA_INFO_DATA) { b in
                    b.u32(IFLA_VXLAN_ID, vni)
                    if let local { b.bytes(IFLA_VXLAN_LOCAL, local.bytes) }
                    if let underlay { b.u32(IFLA_VXLAN_LINK, underlay) }
                    b.be16(IFLA_VXLAN_PORT, port)
                    b.u8(IFLA_VXLAN_LEARNING, learning ? 1 : 0)
                }
            }
        }
        return try b.finish("create \(kindName) \(name)")
    }

    /// RTM_NEWLINK on an existing link (found by name): up/down, MTU, MAC, master, namespace, name.
    public static func setLink(_ name: String, _ s: LinkSettings) throws -> NetlinkRequest {
        try checkName(name, "set link")
        if let n = s.newName { try checkName(n, "rename link") }
        var b = MessageBuilder(type: RTM_NEWLINK, flags: plain)
        b.extra(linkHeader(up: s.up))
        if let n = s.newName {
            // Renaming: the old name cannot also be the key; the caller passes the index in the name's place.
            b.string(IFLA_IFNAME, n)
            b.string(IFLA_ALT_IFNAME, name)
        } else {
            b.string(IFLA_IFNAME, name)
        }
        put(s, into: &b)
        return try b.finish("set link \(name)")
    }

    /// Bridge-port settings (AF_BRIDGE RTM_SETLINK, by index): hairpin mode lets a
    /// frame leave through the port it came in by (a container reaching its own
    /// published port after DNAT in the bridge's netfilter hooks).
    public static func setBridgePort(index: UInt32, hairpin: Bool) throws -> NetlinkRequest {
        var b = MessageBuilder(type: RTM_SETLINK, flags: plain)
        var m = ifinfomsg()
        m.ifi_family = UInt8(AF_BRIDGE)
        m.ifi_index = Int32(bitPattern: index)
        b.extra(m)
        b.nest(Int32(IFLA_PROTINFO) | Int32(NLA_F_NESTED)) { b in b.u8(IFLA_BRPORT_MODE, hairpin ? 1 : 0) }
        return try b.finish("set bridge port \(index) hairpin \(hairpin ? "on" : "off")")
    }

    public static func deleteLink(_ name: String) throws -> NetlinkRequest {
        try checkName(name, "delete link")
        var b = MessageBuilder(type: RTM_DELLINK, flags: plain)
        b.extra(linkHeader(up: nil))
        b.string(IFLA_IFNAME, name)
        return try b.finish("delete link \(name)")
    }

    /// RTM_GETLINK by name: the reply carries the index, flags, MTU and address.
    public static func getLink(_ name: String) throws -> NetlinkRequest {
        try checkName(name, "get link")
        var b = MessageBuilder(type: RTM_GETLINK, flags: plain)
        b.extra(linkHeader(up: nil))
        b.u32(IFLA_EXT_MASK, UInt32(RTEXT_FILTER_SKIP_STATS))
        b.string(IFLA_IFNAME, name)
        return try b.finish("get link \(name)")
    }

    static func addressMessage(_ type: Int, index: UInt32, _ ip: IPv4Address, prefix: Int, flags: Int32, op: String) throws -> NetlinkRequest {
        var b = MessageBuilder(type: type, flags: flags)
        var m = ifaddrmsg()
        m.ifa_family = UInt8(AF_INET)
        m.ifa_prefixlen = UInt8(prefix)
        m.ifa_scope = UInt8(RT_SCOPE_UNIVERSE.rawValue)
        m.ifa_index = index
        b.extra(m)
        b.bytes(IFA_LOCAL, ip.bytes)
        b.bytes(IFA_ADDRESS, ip.bytes)
        if type == Int(RTM_NEWADDR) && prefix < 31 {
            b.bytes(IFA_BROADCAST, IPv4Address(ip.value | ~IPv4Network.mask(prefix)).bytes)
        }
        return try b.finish("\(op) \(ip)/\(prefix)")
    }

    public static func addAddress(index: UInt32, _ ip: IPv4Address, prefix: Int) throws -> NetlinkRequest {
        try addressMessage(Int(RTM_NEWADDR), index: index, ip, prefix: prefix, flags: create, op: "add address")
    }

    public static func deleteAddress(index: UInt32, _ ip: IPv4Address, prefix: Int) throws -> NetlinkRequest {
        try addressMessage(Int(RTM_DELADDR), index: index, ip, prefix: prefix, flags: plain, op: "delete address")
    }

    /// A route in the main table: to `destination` (nil: the default route) via
    /// `gateway` and/or out of `index`; `onLink` for a gateway not on a local subnet (VXLAN).
    public static func route(add: Bool, destination: IPv4Network?, gateway: IPv4Address?, index: UInt32?, onLink: Bool = false) throws -> NetlinkRequest {
        var b = MessageBuilder(type: add ? RTM_NEWROUTE : RTM_DELROUTE, flags: add ? replace : plain)
        var m = rtmsg()
        m.rtm_family = UInt8(AF_INET)
        m.rtm_dst_len = UInt8(destination?.prefix ?? 0)
        m.rtm_table = UInt8(RT_TABLE_MAIN.rawValue)
        m.rtm_protocol = UInt8(RTPROT_BOOT)
        m.rtm_scope = UInt8(gateway == nil ? RT_SCOPE_LINK.rawValue : RT_SCOPE_UNIVERSE.rawValue)
        m.rtm_type = UInt8(RTN_UNICAST)
        if onLink { m.rtm_flags = UInt32(RTNH_F_ONLINK) }
        b.extra(m)
        if let d = destination, d.prefix > 0 { b.bytes(RTA_DST.rawValue, d.address.bytes) }
        if let g = gateway { b.bytes(RTA_GATEWAY.rawValue, g.bytes) }
        if let i = index { b.u32(RTA_OIF.rawValue, i) }
        let what = destination.map { $0.description } ?? "default"
        return try b.finish("\(add ? "add" : "delete") route \(what)" + (gateway.map { " via \($0)" } ?? ""))
    }

    /// A permanent neighbour (ARP) entry.
    public static func neighbour(add: Bool, index: UInt32, _ ip: IPv4Address, mac: MACAddress) throws -> NetlinkRequest {
        var b = MessageBuilder(type: add ? RTM_NEWNEIGH : RTM_DELNEIGH, flags: add ? replace : plain)
        var m = ndmsg()
        m.ndm_family = UInt8(AF_INET)
        m.ndm_ifindex = Int32(bitPattern: index)
        m.ndm_state = UInt16(HAKO_NUD_PERMANENT)
        b.extra(m)
        b.bytes(NDA_DST, ip.bytes)
        b.bytes(NDA_LLADDR, mac.bytes)
        return try b.finish("\(add ? "add" : "delete") neighbour \(ip)")
    }

    /// A bridge forwarding-database entry on a device (for VXLAN: the remote endpoint `destination`).
    public static func fdb(add: Bool, index: UInt32, mac: MACAddress, destination: IPv4Address?) throws -> NetlinkRequest {
        var b = MessageBuilder(type: add ? RTM_NEWNEIGH : RTM_DELNEIGH, flags: add ? (NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND) : plain)
        var m = ndmsg()
        m.ndm_family = UInt8(AF_BRIDGE)
        m.ndm_ifindex = Int32(bitPattern: index)
        m.ndm_state = UInt16(HAKO_NUD_PERMANENT)
        m.ndm_flags = UInt8(HAKO_NTF_SELF)
        b.extra(m)
        b.bytes(NDA_LLADDR, mac.bytes)
        if let d = destination { b.bytes(NDA_DST, d.bytes) }
        return try b.finish("\(add ? "add" : "delete") fdb entry \(mac)")
    }
}

/// A link as the kernel reports it.
public struct LinkInfo: Sendable, Equatable {
    public var index: UInt32
    public var name: String
    public var up: Bool
    public var mtu: UInt32
    public var mac: MACAddress?
    /// IFLA_LINK, which the kernel leaves out when it equals `index`: for a
    /// veth, its peer's index in the peer's namespace.
    public var link: UInt32? = nil
}

/// Operations composed of requests over one transport (one network namespace).
public final class RouteNetlink: @unchecked Sendable {
    public let transport: any NetlinkTransport

    public init(_ transport: any NetlinkTransport) { self.transport = transport }

    public func link(_ name: String) throws -> LinkInfo? {
        do {
            for m in try transport.perform(try RouteRequest.getLink(name)) where m.count >= 32 {
                let type = UInt16(m[4]) | UInt16(m[5]) << 8
                guard type == UInt16(RTM_NEWLINK) else { continue }
                let index = UInt32(m[20]) | UInt32(m[21]) << 8 | UInt32(m[22]) << 16 | UInt32(m[23]) << 24
                let flags = UInt32(m[24]) | UInt32(m[25]) << 8 | UInt32(m[26]) << 16 | UInt32(m[27]) << 24
                let a = NetlinkAttributes(m, offset: 32)
                return LinkInfo(index: index, name: a.string(IFLA_IFNAME) ?? name, up: flags & UInt32(HAKO_IFF_UP) != 0,
                                mtu: a.u32(IFLA_MTU) ?? 0, mac: a.values[UInt16(IFLA_ADDRESS)].map { MACAddress(bytes: $0) },
                                link: a.u32(IFLA_LINK))
            }
            return nil
        } catch let e as NetlinkError where e.kind == .notFound {
            return nil
        }
    }

    public func index(of name: String) throws -> UInt32 {
        guard let l = try link(name) else { throw NetlinkError(operation: "find link \(name)", errno: ENODEV) }
        return l.index
    }

    public func create(_ name: String, _ kind: LinkKind, _ settings: LinkSettings = LinkSettings()) throws {
        _ = try transport.perform(try RouteRequest.createLink(name, kind: kind, settings: settings))
    }

    public func set(_ name: String, _ settings: LinkSettings) throws {
        _ = try transport.perform(try RouteRequest.setLink(name, settings))
    }

    /// Deletes a link; one that does not exist is fine.
    public func delete(_ name: String) throws {
        do { _ = try transport.perform(try RouteRequest.deleteLink(name)) } catch let e as NetlinkError where e.kind == .notFound {}
    }

    public func addAddress(_ name: String, _ ip: IPv4Address, prefix: Int) throws {
        do {
            _ = try transport.perform(try RouteRequest.addAddress(index: try index(of: name), ip, prefix: prefix))
        } catch let e as NetlinkError where e.kind == .exists {}
    }

    public func addRoute(_ destination: IPv4Network?, via gateway: IPv4Address?, dev: String?, onLink: Bool = false) throws {
        let i = try dev.map { try index(of: $0) }
        _ = try transport.perform(try RouteRequest.route(add: true, destination: destination, gateway: gateway, index: i, onLink: onLink))
    }
}
