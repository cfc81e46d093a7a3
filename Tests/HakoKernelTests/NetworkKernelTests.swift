#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import Foundation
import HakoSystem
import HakoTestSupport
import Testing
@testable import HakoNetwork

/// A network namespace a test owns (iproute2 sets it up; tests may use it), deleted at the end.
final class TestNetns: @unchecked Sendable {
    let name: String
    init(_ tag: String) {
        name = "hako-nt-\(tag)-\(getpid())"
        _ = sh(["ip", "netns", "add", name])
    }
    deinit { _ = sh(["ip", "netns", "del", name]) }
    var path: String { "/run/netns/\(name)" }
    func open() throws -> FileDescriptor { try FileDescriptor.open(path, O_RDONLY) }
    func run(_ args: [String]) -> String { sh(["ip", "netns", "exec", name] + args) }
}

@discardableResult
func sh(_ argv: [String]) -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    do { try p.run() } catch { return "" }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

@Suite(.needsRoot) struct NetworkKernelTests {
    /// The golden requests do what they say in a real kernel.
    @Test func linksAddressesRoutesInANamespace() throws {
        let a = TestNetns("a"), b = TestNetns("b")
        let nsA = try a.open(), nsB = try b.open()
        let rt = RouteNetlink(try NetlinkSocket(namespace: nsA))
        try rt.create("hako0", .bridge, LinkSettings(up: true))
        try rt.addAddress("hako0", IPv4Address("10.88.0.1")!, prefix: 16)
        let br = try rt.index(of: "hako0")
        try rt.create("vethabc", .veth(peer: "eth0", peerNamespaceFD: nsB.rawValue, peerMAC: MACAddress("02:42:0a:58:00:02")),
                      LinkSettings(up: true, mtu: 1500, masterIndex: br))
        do {
            try rt.create("hako0", .bridge)
            Issue.record("a second bridge of the same name was created")
        } catch let e as NetlinkError {
            #expect(e.kind == .exists)
            #expect(e.description.contains("create bridge hako0"))
        }
        let inB = RouteNetlink(try NetlinkSocket(namespace: nsB))
        try inB.set("lo", LinkSettings(up: true))
        try inB.set("eth0", LinkSettings(up: true))
        try inB.addAddress("eth0", IPv4Address("10.88.0.2")!, prefix: 16)
        try inB.addRoute(nil, via: IPv4Address("10.88.0.1"), dev: "eth0")
        let link = try #require(try inB.link("eth0"))
        #expect(link.mac?.description == "02:42:0a:58:00:02" && link.up && link.mtu == 1500)
        #expect(b.run(["ip", "route"]).contains("default via 10.88.0.1 dev eth0"))
        #expect(a.run(["ip", "-o", "link", "show", "vethabc"]).contains("master hako0"))
        #expect(b.run(["busybox", "ping", "-c", "1", "-W", "2", "10.88.0.1"]).contains("1 packets received"))
        // neighbours, FDB, VXLAN (the cluster's building blocks)
        try rt.create("hako.vx", .vxlan(vni: 42, local: IPv4Address("10.88.0.1"), port: 4789, underlayIndex: br, learning: false), LinkSettings(mtu: 1450))
        let vx = try rt.index(of: "hako.vx")
        _ = try rt.transport.perform(try RouteRequest.fdb(add: true, index: vx, mac: MACAddress("0e:00:00:00:00:01")!, destination: IPv4Address("10.88.0.2")))
        try rt.set("hako.vx", LinkSettings(up: true))
        _ = try rt.transport.perform(try RouteRequest.neighbour(add: true, index: vx, IPv4Address("10.89.3.0")!, mac: MACAddress("0e:00:00:00:00:01")!))
        try rt.addRoute(IPv4Network("10.89.3.0/24"), via: IPv4Address("10.89.3.0"), dev: "hako.vx", onLink: true)
        #expect(a.run(["bridge", "fdb", "show", "dev", "hako.vx"]).contains("0e:00:00:00:00:01 dst 10.88.0.2"))
        #expect(a.run(["ip", "neigh", "show", "dev", "hako.vx"]).contains("10.89.3.0 lladdr 0e:00:00:00:00:01 PERMANENT"))
        #expect(a.run(["ip", "route"]).contains("10.89.3.0/24 via 10.89.3.0 dev hako.vx onlink"))
        #expect(a.run(["ip", "-d", "link", "show", "hako.vx"]).contains("vxlan id 42"))
        try rt.delete("vethabc")
        try rt.delete("vethabc")
        #expect(try rt.link("vethabc") == nil)
    }

    @Test func nftablesBatchInANamespace() throws {
        let ns = TestNetns("nft")
        let nft = try NetlinkSocket.nftables(namespace: try ns.open())
        var r = NatRuleset(bridges: [BridgeRules(bridge: "hako0", subnet: IPv4Network("10.88.0.0/16")!),
                                     BridgeRules(bridge: "hako-1", subnet: IPv4Network("10.89.0.0/24")!,
                                                 masqueradeExcept: [IPv4Network("10.77.0.0/16")!])],
                           forwards: [PortForward(proto: .tcp, hostIP: nil, hostPort: 8080, containerIP: IPv4Address("10.88.0.2")!, containerPort: 80),
                                      PortForward(proto: .udp, hostIP: IPv4Address("10.0.0.1"), hostPort: 53, containerIP: IPv4Address("10.88.0.3")!, containerPort: 5353)])
        try nft.apply(NftablesBatch.apply(r))
        let listed = ns.run(["nft", "list", "table", "ip", "hako"])
        for line in ["fib daddr type local jump ports", "tcp dport 8080 dnat to 10.88.0.2:80",
                     "ip daddr 10.0.0.1 udp dport 53 dnat to 10.88.0.3:5353",
                     "oifname \"hako0\" ip saddr 127.0.0.0/8 masquerade", "oifname \"hako0\" ct status dnat ip saddr 10.88.0.0/16 masquerade",
                     "ip saddr 10.88.0.0/16 oifname != \"hako0\" masquerade",
                     "ip saddr 10.89.0.0/24 ip daddr != 10.77.0.0/16 oifname != \"hako-1\" masquerade", "iifname \"hako0\" oifname \"hako-1\" drop"] {
            #expect(listed.contains(line), "missing: \(line)\n\(listed)")
        }
        // Applying again replaces, never duplicates.
        r.forwards.removeFirst()
        try nft.apply(NftablesBatch.apply(r))
        let again = ns.run(["nft", "list", "table", "ip", "hako"])
        #expect(!again.contains("dport 8080"))
        #expect(again.components(separatedBy: "dnat to").count == 2)
        try nft.apply(NftablesBatch.remove(table: "hako"))
        try nft.apply(NftablesBatch.remove(table: "hako"))
        #expect(!ns.run(["nft", "list", "tables"]).contains("hako"))
    }

    @Test func pinnedNamespaceOutlivesItsCreator() throws {
        let dir = "/tmp/hako-nt-pin-\(getpid())"
        try FS.makeDirectories(dir)
        defer { try? FS.removeTree(dir) }
        let path = dir + "/ns"
        try FS.writeFile(path, [])
        let socket = NetlinkSocket.routeSocketOfNewNamespace(pinnedAt: path)
        #expect(socket >= 0)
        let fd = try FileDescriptor.open(path, O_RDONLY)
        for rt in [RouteNetlink(try NetlinkSocket(namespace: fd)), RouteNetlink(try NetlinkSocket(adopting: socket))] {
            #expect(try rt.link("lo") != nil)
            #expect(try rt.link("eth0") == nil)
        }
        fd.close()
        #expect(umount2(path, Int32(MNT_DETACH)) == 0)
    }
}
