#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
@testable import HakoNetwork

/// A throwaway cluster in network namespaces, as ../shared/tools/overlay-sim.sh
/// builds it: an underlay namespace with a bridge, N "node" namespaces on it
/// (eth0 = 172.31.252.N/24), each with a container bridge `hkbr0` (10.77.N.1/24)
/// and one "container" namespace behind it (eth0 = 10.77.N.2/24). The overlay
/// itself is made by hako's facility, not by the lab. iproute2 builds the
/// fixture; everything is deleted (namespaces, and processes by PID) at the end.
final class OverlayLab: @unchecked Sendable {
    let tag: String
    let count: Int
    let config = OverlayConfig(vni: 42, port: 4789, clusterCIDR: IPv4Network("10.77.0.0/16")!)
    private var processes: [Process] = []
    private var namespaces: [String] = []

    init(nodes: Int = 3, tag: String) {
        self.tag = "\(tag)\(getpid() % 100_000)"
        self.count = nodes
    }

    func underlayNS() -> String { "hkov-ul-\(tag)" }
    func nodeNS(_ n: Int) -> String { "hkov-n\(n)-\(tag)" }
    func ctrNS(_ n: Int) -> String { "hkov-c\(n)-\(tag)" }
    func underlayIP(_ n: Int) -> IPv4Address { IPv4Address(0xac1f_fc00 | UInt32(n)) }
    func ctrIP(_ n: Int) -> IPv4Address { IPv4Address(0x0a4d_0002 | UInt32(n) << 8) }
    func gateway(_ n: Int) -> IPv4Address { IPv4Address(0x0a4d_0001 | UInt32(n) << 8) }
    func node(_ n: Int) -> OverlayNode {
        OverlayNode(id: "node\(n)", underlay: underlayIP(n), subnet: IPv4Network(IPv4Address(0x0a4d_0000 | UInt32(n) << 8), prefix: 24))
    }
    var nodes: [OverlayNode] { (1...count).map(node) }

    /// Runs a command; fails the set-up loudly.
    @discardableResult
    func must(_ argv: [String]) throws -> String {
        let (status, out) = run(argv)
        if status != 0 { throw HakoError(.failed, "lab: \(argv.joined(separator: " ")): \(out)") }
        return out
    }

    func run(_ argv: [String], timeout: Double = 20) -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["timeout", String(Int(timeout))] + argv
        p.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func inNS(_ ns: String, _ argv: [String], timeout: Double = 20) -> (Int32, String) {
        run(["ip", "netns", "exec", ns] + argv, timeout: timeout)
    }

    /// A long-running process in a namespace, killed by PID at the end.
    func background(_ ns: String, _ argv: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["ip", "netns", "exec", ns] + argv
        p.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        processes.append(p)
    }

    private func addNS(_ name: String) throws {
        try must(["ip", "netns", "add", name])
        namespaces.append(name)
        try must(["ip", "-n", name, "link", "set", "lo", "up"])
    }

    func open(_ ns: String) throws -> FileDescriptor { try FileDescriptor.open("/run/netns/\(ns)", O_RDONLY) }
    func netlink(_ ns: String) throws -> NetlinkSocket { try NetlinkSocket(namespace: try open(ns)) }
    func overlay(_ n: Int) throws -> Overlay { Overlay(transport: try netlink(nodeNS(n)), config: config) }

    /// The underlay, the nodes, and per node a bridge and a container, with the
    /// MTUs the overlay asks for (set through hako's netlink layer).
    func up() throws {
        try addNS(underlayNS())
        try must(["ip", "-n", underlayNS(), "link", "add", "br-ul", "type", "bridge"])
        try must(["ip", "-n", underlayNS(), "link", "set", "br-ul", "up"])
        for n in 1...count {
            let node = nodeNS(n), ctr = ctrNS(n)
            try addNS(node)
            try addNS(ctr)
            try must(["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            try must(["ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "ul\(n)", "netns", underlayNS()])
            try must(["ip", "-n", underlayNS(), "link", "set", "ul\(n)", "master", "br-ul", "up"])
            try must(["ip", "-n", node, "addr", "add", "\(underlayIP(n))/24", "dev", "eth0"])
            try must(["ip", "-n", node, "link", "set", "eth0", "up"])
            try must(["ip", "-n", node, "link", "add", "hkbr0", "type", "bridge"])
            try must(["ip", "-n", node, "addr", "add", "\(gateway(n))/24", "dev", "hkbr0"])
            try must(["ip", "-n", node, "link", "add", "vc\(n)", "type", "veth", "peer", "name", "eth0", "netns", ctr])
            try must(["ip", "-n", node, "link", "set", "vc\(n)", "master", "hkbr0", "up"])
            try must(["ip", "-n", node, "link", "set", "hkbr0", "up"])
            try must(["ip", "-n", ctr, "addr", "add", "\(ctrIP(n))/24", "dev", "eth0"])
            try must(["ip", "-n", ctr, "link", "set", "eth0", "up"])
            try must(["ip", "-n", ctr, "route", "add", "default", "via", "\(gateway(n))"])
            let mtu = try overlay(n).mtu(node: self.node(n))
            let nodeLinks = RouteNetlink(try netlink(node))
            try nodeLinks.setMTU("hkbr0", mtu)
            try nodeLinks.setMTU("vc\(n)", mtu)
            try RouteNetlink(try netlink(ctr)).setMTU("eth0", mtu)
        }
    }

    /// A machine on the underlay that is no node of the cluster (any device on
    /// the Pis' LAN): namespace `hkov-x-TAG`, eth0 = `address`/24 on the underlay bridge.
    func stranger(_ address: IPv4Address) throws -> String {
        let ns = "hkov-x-\(tag)"
        try addNS(ns)
        try must(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "ulx", "netns", underlayNS()])
        try must(["ip", "-n", underlayNS(), "link", "set", "ulx", "master", "br-ul", "up"])
        try must(["ip", "-n", ns, "addr", "add", "\(address)/24", "dev", "eth0"])
        try must(["ip", "-n", ns, "link", "set", "eth0", "up"])
        return ns
    }

    /// Every node reconciled to the full peer map; the changes per node.
    @discardableResult
    func reconcileAll(_ peers: [OverlayNode]? = nil) throws -> [Int] {
        try (1...count).map { try overlay($0).reconcile(node: node($0), peers: peers ?? nodes).changes }
    }

    deinit {
        for p in processes where p.isRunning {
            kill(p.processIdentifier, SIGTERM)
        }
        for p in processes {
            for _ in 0..<50 where p.isRunning { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
        }
        for ns in namespaces.reversed() { _ = run(["ip", "netns", "del", ns]) }
    }
}
