#if canImport(Glibc)
import Glibc
#endif
import CMnl
import HakoSystem

/// The overlay on one node, over netlink in one network namespace (the node's).
///
///     let overlay = Overlay(transport: try NetlinkSocket(), config: OverlayConfig(vni: 42, clusterCIDR: cidr))
///     let plan = try overlay.reconcile(node: me, peers: peerMap)   // idempotent; plan.changes == 0 when nothing moved
///     try overlay.remove()                                         // the device, and with it every entry
///
/// `reconcile` makes sure the VXLAN device exists as configured (VNI, UDP port,
/// local = the node's underlay address on the link holding it, learning off,
/// MTU = underlay MTU − 50, the node's VTEP MAC, address subnet .0/32, up),
/// then reads the device's FDB and neighbour entries and hako's routes through
/// it and applies only the difference to the peer map (`OverlayPlan`). Nothing
/// outside the device is touched; routes are hako's by their rtm_protocol. The
/// node's bridge and its containers' veths take `mtu` (`RouteNetlink.setMTU`,
/// `BridgeDriver(host:mtu:)`).
public final class Overlay: @unchecked Sendable {
    public let config: OverlayConfig
    public let netlink: RouteNetlink
    /// The underlay link's name; nil: the link that holds the node's underlay address.
    public let underlayDevice: String?

    public init(transport: any NetlinkTransport, config: OverlayConfig, underlayDevice: String? = nil) {
        self.netlink = RouteNetlink(transport)
        self.config = config
        self.underlayDevice = underlayDevice
    }

    /// The VXLAN device as the kernel has it.
    public struct Device: Sendable, Equatable {
        public var link: LinkInfo
        public var kind: String?
        public var vni: UInt32?
        public var local: IPv4Address?
        public var port: UInt16?
        public var learning: Bool?
        public var underlayIndex: UInt32?
    }

    /// Brings the kernel to the peer map; returns what it changed. `peers` may
    /// include this node (it is skipped). Bad maps are refused before any change.
    @discardableResult
    public func reconcile(node: OverlayNode, peers: [OverlayNode]) throws -> OverlayPlan {
        let others = peers.filter { $0.id != node.id }
        try OverlayPlan.validate(node: node, peers: others, config: config)
        let device = try ensureDevice(node: node)
        let plan = OverlayPlan.make(peers: others, current: try state(device: device.link.index), device: device.link.index)
        var conflicts: [String] = []
        for request in try plan.requests(device: device.link.index) {
            do {
                _ = try netlink.transport.perform(request)
            } catch let e as NetlinkError where e.kind == .notFound && (request.type == UInt16(RTM_DELROUTE) || request.type == UInt16(RTM_DELNEIGH)) {
                // already gone
            } catch let e as NetlinkError where e.kind == .exists && request.type == UInt16(RTM_NEWROUTE) {
                conflicts.append(request.operation)
            }
        }
        if !conflicts.isEmpty {
            throw HakoError(.conflict(.inUse(.address, conflicts.joined(separator: ", "), by: [])), "overlay: a route not made by hako is in the way: \(conflicts.joined(separator: ", "))")
        }
        return plan
    }

    /// The device's FDB and neighbour entries, and hako's routes through it.
    public func state(device: UInt32) throws -> OverlayState {
        OverlayState(fdb: try netlink.neighbours(family: AF_BRIDGE, index: device),
                     neighbours: try netlink.neighbours(family: AF_INET, index: device),
                     routes: try netlink.routes().filter { $0.outputIndex == device && $0.routeProtocol == OverlayConfig.routeProtocol })
    }

    /// The MTU for the overlay's links on this node: the underlay link's MTU − 50.
    public func mtu(node: OverlayNode) throws -> UInt32 {
        OverlayConfig.mtu(underlay: try netlink.link(try underlayLink(node)).map { $0.mtu } ?? 1500)
    }

    /// Creates the device, or repairs it: one with other VXLAN parameters (or not a
    /// VXLAN device at all) under hako's name is replaced; MTU, MAC, address and up are set.
    @discardableResult
    public func ensureDevice(node: OverlayNode) throws -> Device {
        let name = config.deviceName
        let underlayName = try underlayLink(node)
        guard let underlay = try netlink.link(underlayName) else {
            throw HakoError(.notFound(.device, underlayName), "overlay: underlay link \(underlayName) not found")
        }
        let mtu = OverlayConfig.mtu(underlay: underlay.mtu)
        if let d = try device(), d.kind != "vxlan" || d.vni != config.vni || d.port != config.port || d.local != node.underlay
            || d.learning != false || d.underlayIndex != underlay.index {
            try netlink.delete(name)
        }
        if try netlink.link(name) == nil {
            let kind = LinkKind.vxlan(vni: config.vni, local: node.underlay, port: config.port, underlayIndex: underlay.index, learning: false)
            do {
                try netlink.create(name, kind, LinkSettings(mtu: mtu, mac: node.vtepMAC))
            } catch let e as NetlinkError where e.kind == .exists {}
        }
        guard var d = try device() else { throw HakoError(.failed, "overlay: VXLAN device \(name) vanished while being set up") }
        if d.link.mtu != mtu || d.link.mac != node.vtepMAC {
            try netlink.set(name, LinkSettings(mtu: mtu, mac: node.vtepMAC))
        }
        // Exactly one address: the subnet's .0/32 (a node that changed subnet loses the old one).
        for a in try netlink.addresses() where a.index == d.link.index && !(a.address == node.vtepAddress && a.prefix == 32) {
            _ = try? netlink.transport.perform(try RouteRequest.deleteAddress(index: a.index, a.address, prefix: a.prefix))
        }
        try netlink.addAddress(name, node.vtepAddress, prefix: 32)
        if !d.link.up { try netlink.set(name, LinkSettings(up: true)) }
        d.link.mtu = mtu; d.link.mac = node.vtepMAC; d.link.up = true
        return d
    }

    /// Deletes the device; the kernel drops its FDB and neighbour entries and the routes through it.
    public func remove() throws { try netlink.delete(config.deviceName) }

    /// The device with its VXLAN parameters (IFLA_LINKINFO), or nil.
    public func device() throws -> Device? {
        let replies: [[UInt8]]
        do {
            replies = try netlink.transport.perform(try RouteRequest.getLink(config.deviceName))
        } catch let e as NetlinkError where e.kind == .notFound { return nil }
        for m in replies where m.count >= 32 && RouteDump.type(m) == UInt16(RTM_NEWLINK) {
            return Overlay.parseDevice(m)
        }
        return nil
    }

    /// Parses an RTM_NEWLINK reply with its link info (pure).
    static func parseDevice(_ m: [UInt8]) -> Device {
        let flags = RouteDump.u32(m, 24)
        let a = NetlinkAttributes(m, offset: 32)
        let link = LinkInfo(index: RouteDump.u32(m, 20), name: a.string(IFLA_IFNAME) ?? "", up: flags & UInt32(HAKO_IFF_UP) != 0,
                            mtu: a.u32(IFLA_MTU) ?? 0, mac: a.values[UInt16(IFLA_ADDRESS)].map { MACAddress(bytes: $0) })
        var d = Device(link: link)
        if let info = a.values[UInt16(IFLA_LINKINFO)] {
            let i = NetlinkAttributes(info, offset: 0)
            d.kind = i.string(IFLA_INFO_KIND)
            if d.kind == "vxlan", let data = i.values[UInt16(IFLA_INFO_DATA)] {
                let x = NetlinkAttributes(data, offset: 0)
                d.vni = x.u32(IFLA_VXLAN_ID)
                d.local = RouteDump.ipv4(x.values[UInt16(IFLA_VXLAN_LOCAL)])
                d.underlayIndex = x.u32(IFLA_VXLAN_LINK)
                if let p = x.values[UInt16(IFLA_VXLAN_PORT)], p.count == 2 { d.port = UInt16(p[0]) << 8 | UInt16(p[1]) }
                if let l = x.values[UInt16(IFLA_VXLAN_LEARNING)], let b = l.first { d.learning = b != 0 }
            }
        }
        return d
    }

    /// The underlay link: as configured, else the one holding the node's underlay address.
    func underlayLink(_ node: OverlayNode) throws -> String {
        if let underlayDevice { return underlayDevice }
        guard let a = try netlink.addresses().first(where: { $0.address == node.underlay }) else {
            throw HakoError(.notFound(.device, "\(node.underlay)"), "overlay: no link has the underlay address \(node.underlay)")
        }
        guard let l = try linkName(index: a.index) else { throw HakoError(.failed, "overlay: link \(a.index) vanished") }
        return l
    }

    func linkName(index: UInt32) throws -> String? {
        var b = MessageBuilder(type: RTM_GETLINK, flags: RouteRequest.plain)
        b.extra(RouteRequest.linkHeader(index: Int32(bitPattern: index), up: nil))
        b.u32(IFLA_EXT_MASK, UInt32(RTEXT_FILTER_SKIP_STATS))
        for m in try netlink.transport.perform(try b.finish("get link \(index)")) where m.count >= 32 {
            return NetlinkAttributes(m, offset: 32).string(IFLA_IFNAME)
        }
        return nil
    }
}

extension Overlay.Device {
    init(link: LinkInfo) { self.link = link }
}
