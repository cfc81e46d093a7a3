#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
@testable import HakoEngine
@testable import HakoNetwork
@testable import HakoRuntime
import HakoSystem
import Testing

/// Address leases as links (one per address, made exclusively, given up only
/// by their holder, an older hako's JSON file migrated), which containers'
/// monitors release their network themselves, and the records that tell the
/// C monitor so.
@Suite struct NetworkReleaseTests {
    static func tempRoot() throws -> String {
        var template = Array("/tmp/hako-lease-test-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw SystemError("mkdtemp") }
        return String(cString: p)
    }

    let a = IPv4Address("172.17.0.2")!, b = IPv4Address("172.17.0.3")!
    let one = String(repeating: "a", count: 64), two = String(repeating: "b", count: 64)

    @Test func anAddressHasOneHolderAndOnlyItsHolderGivesItUp() throws {
        let root = try Self.tempRoot()
        defer { try? FS.removeTree(root) }
        let store = NetworkStore(dataRoot: root)
        try store.ensure()
        #expect(try store.claim("net", a, for: one))
        #expect(try !store.claim("net", a, for: two), "a second claim of the address fails")
        #expect(try store.claim("net", b, for: two))
        #expect(store.leases("net") == [a: one, b: two])
        #expect(FS.readLink(store.leasePath("net", a)) == one, "a link to its holder")
        store.release("net", a, heldBy: two)
        #expect(store.leases("net")[a] == one, "not released by another container")
        store.release("net", a, heldBy: one)
        #expect(store.leases("net") == [b: two])
        #expect(try store.claim("net", a, for: two), "free again")
        try store.remove(NetworkDefinition(id: "net", name: "n", driver: .bridge, subnet: nil, gateway: nil, bridge: "x", created: ""))
        #expect(!FS.exists(root + "/networks/leases/net"), "a removed network's leases go with it")
    }

    @Test func anOlderHakosLeaseFileBecomesLinks() throws {
        let root = try Self.tempRoot()
        defer { try? FS.removeTree(root) }
        let store = NetworkStore(dataRoot: root)
        try store.ensure()
        let legacy = root + "/networks/leases/net.json"
        try FS.writeFile(legacy, Array("{\"172.17.0.2\":\"\(one)\",\"172.17.0.3\":\"\(two)\",\"bad\":\"x\"}".utf8))
        // A lease made as a link since (by this version) wins over the old file's.
        try FS.makeDirectories(root + "/networks/leases/net", mode: 0o700)
        try FS.symlink(two, at: store.leasePath("net", a))
        #expect(store.leases("net") == [a: two, b: two])
        #expect(!FS.exists(legacy), "the old file is gone once migrated")
        #expect(try !store.claim("net", b, for: one), "a migrated lease is honoured")
    }

    func record(networks: [String], ports: [PortBinding] = []) -> EndpointRecord {
        let attachments = networks.enumerated().map { i, n in
            Attachment(networkID: "id-\(n)", networkName: n, bridge: "br", interface: "eth\(i)", hostVeth: "veth\(i)",
                       ip: IPv4Address(0xac11_0002 + UInt32(i)), prefix: 16, gateway: IPv4Address("172.17.0.1")!,
                       mac: MACAddress(derivedFrom: IPv4Address(0xac11_0002 + UInt32(i))), aliases: [])
        }
        return EndpointRecord(containerID: one, name: "web", hostname: "web", netns: "/run/hako/netns/\(one)", attachments: attachments, ports: ports)
    }

    @Test func onlyAContainerWithoutPortsOnPredefinedNetworksReleasesAlone() {
        #expect(Engine.releasesNetworkAlone(record(networks: ["bridge"])), "the default bridge, nothing published")
        #expect(!Engine.releasesNetworkAlone(record(networks: ["bridge"], ports: [PortBinding(proto: .tcp, hostIP: nil, hostPort: 8080, containerPort: 80)])),
                "a published port: the firewall changes at the teardown")
        #expect(!Engine.releasesNetworkAlone(record(networks: ["front"])), "a user network: peers' name files list the container")
        #expect(!Engine.releasesNetworkAlone(record(networks: ["bridge", "front"])))
    }

    @Test func theReleaseReachesTheCParser() {
        let (r, sample) = LaunchSpecTests().sample()
        var m = sample
        m.cleanupCommand = ["/usr/local/bin/hako", "network", "teardown", "abc"]
        m.networkRelease = NetworkRelease(lock: "/var/lib/hako/networks/lock", teardownGuard: "/run/hako/networks/endpoints/abc.teardown",
                                          namespace: "/run/hako/netns/abc", leases: ["/var/lib/hako/networks/leases/n/172.17.0.2"],
                                          endpointRecord: "/run/hako/networks/endpoints/abc.json")
        let (ok, s, msg, keep) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        withExtendedLifetime(keep) {
            #expect(ok, "\(msg)")
            #expect(str(s.net_lock) == "/var/lib/hako/networks/lock" && str(s.net_guard) == "/run/hako/networks/endpoints/abc.teardown")
            #expect(str(s.net_unpin) == "/run/hako/netns/abc" && str(s.net_record) == "/run/hako/networks/endpoints/abc.json")
            #expect(s.nnet_leases == 1 && str(s.net_leases.0) == "/var/lib/hako/networks/leases/n/172.17.0.2")
            #expect(s.ncleanup == 4, "the clean-up command stays: the guard can ask for it")
        }
        m.networkRelease = nil
        let (plain, p, _, keep2) = parseWithC(LaunchSpecEncoder.encode(r, monitor: m))
        withExtendedLifetime(keep2) { #expect(plain && p.net_lock == nil && p.nnet_leases == 0) }
    }
}
