#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// The network release of a container that publishes no port on the default
/// bridge, done by its monitor (no `hako network teardown` process), and the
/// address leases it unlinks: one symbolic link per address, created
/// exclusively, given up only by its holder; an older hako's lease file read
/// and honoured; concurrent runs, removals racing the monitors' release,
/// back-to-back runs taking the same address.
@Suite(.needsRoot, .serialized)
final class NetworkReleaseTests {
    let host = TestHost.make("netrel")

    deinit { host.cleanup() }

    func entries(_ dir: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] }
    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// A hako command whose clean-up command would be /bin/false (HAKO_BIN):
    /// what such a container's monitor removes, it removes by itself.
    func hakoWithoutTeardownCommand(_ args: String...) -> Output {
        var env = host.env
        env["HAKO_BIN"] = "/bin/false"
        return Subprocess.run(host.prefix + [Binaries.hako] + args, env: env)
    }

    func bridgeID() -> String {
        let r = host.hako("network", "inspect", "bridge")
        guard let data = r.stdout.data(using: .utf8), let arr = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return "" }
        return arr.first?["Id"] as? String ?? ""
    }

    /// The default bridge's leases as links on disk: address → container id.
    func leases(_ networkID: String) -> [String: String] {
        let dir = "\(host.root)/networks/leases/\(networkID)"
        var out: [String: String] = [:]
        for name in entries(dir) { out[name] = (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(name)")) ?? "?" }
        return out
    }

    /// The monitor has ended: it removes its runtime directory last. Read on
    /// disk, not through a hako command (which would settle what a dead
    /// monitor left, and so hide what this one did not do).
    func monitorEnded(_ id: String) -> Bool { !exists("\(host.runRoot)/containers/\(id)") }

    func vethGone() -> Bool {
        host.eventually(10) { !Subprocess.run(["/usr/bin/ip", "-n", host.netns, "-o", "link"]).stdout.contains("veth") }
    }

    @Test func theMonitorReleasesAQuietContainersNetworkByItself() throws {
        let r = hakoWithoutTeardownCommand("run", "-d", "--ip", "172.17.0.77", host.busybox, "sleep", "1")
        let id = r.out
        try #require(r.status == 0 && id.count == 64, "\(r.stderr)")
        let bridge = bridgeID()
        #expect(leases(bridge) == ["172.17.0.77": id], "the lease is a link to its holder")
        #expect(host.eventually(20) { monitorEnded(id) })
        #expect(!exists("\(host.runRoot)/netns/\(id)"), "the namespace is unpinned")
        #expect(!exists("\(host.runRoot)/networks/endpoints/\(id).json"), "the endpoint record is removed")
        #expect(leases(bridge).isEmpty, "the lease is unlinked: \(leases(bridge))")
        #expect(vethGone(), "the kernel removes the veth pair with the namespace")
        let again = host.hako("run", "--rm", "--ip", "172.17.0.77", host.busybox, "ip", "-o", "-4", "addr", "show", "eth0")
        #expect(again.status == 0 && again.stdout.contains("172.17.0.77/"), "the address is free again: \(again.stdout) \(again.stderr)")
        #expect(host.hako("rm", id).status == 0)

        // A restart policy keeps the namespace and the lease across restarts;
        // the final exit releases them.
        let p = hakoWithoutTeardownCommand("run", "-d", "--restart", "on-failure:2", "--ip", "172.17.0.78", host.busybox, "sh", "-c", "sleep 0.2; exit 3")
        try #require(p.status == 0, "\(p.stderr)")
        var seen: Set<String> = []
        _ = host.eventually(20) {
            if let holder = leases(bridge)["172.17.0.78"] { seen.insert(holder) }
            return monitorEnded(p.out)
        }
        #expect(seen == [p.out], "held by the container until its final exit: \(seen)")
        #expect(host.inspect(p.out)["RestartCount"] as? Int == 2, "restarted twice")
        #expect(leases(bridge).isEmpty && !exists("\(host.runRoot)/netns/\(p.out)"))
        #expect(host.hako("rm", p.out).status == 0)
    }

    /// `network connect` of a running container gives it peers that list its
    /// name and a lease its monitor was not told of: the whole teardown runs.
    @Test func connectAsksTheMonitorForTheWholeTeardown() throws {
        #expect(host.hako("network", "create", "peers").status == 0)
        #expect(host.hako("run", "-d", "--name", "peer-one", "--network", "peers", host.busybox, "sleep", "60").status == 0)
        #expect(host.hako("run", "-d", "--name", "quiet-one", host.busybox, "sleep", "60").status == 0)
        let id = host.hako("inspect", "--format", "{{.Id}}", "quiet-one").out
        #expect(host.hako("network", "connect", "peers", "quiet-one").status == 0)
        #expect(exists("\(host.runRoot)/networks/endpoints/\(id).teardown"), "the guard its monitor looks for")
        #expect(host.hako("exec", "peer-one", "cat", "/etc/hosts").stdout.contains("quiet-one"))
        #expect(host.hako("stop", "-t", "0", "quiet-one").status == 0)
        let hosts = host.hako("exec", "peer-one", "cat", "/etc/hosts").stdout
        #expect(!hosts.contains("quiet-one"), "the whole teardown ran: \(hosts)")
        #expect(entries("\(host.runRoot)/networks/endpoints").allSatisfy { !$0.hasPrefix(id) })
        let peersID = host.hako("network", "inspect", "--format", "{{.Id}}", "peers").out
        #expect(leases(peersID).count == 1 && leases(bridgeID()).isEmpty, "only peer-one holds an address")
        host.hako("rm", "-f", "peer-one", "quiet-one")
        #expect(host.hako("network", "rm", "peers").status == 0)
    }

    /// An upgrade: the leases an older hako kept in one JSON file per network
    /// are read and honoured (a running container's address is not given
    /// again), and become links.
    @Test func leasesOfAnOlderHakoAreReadAndHonoured() throws {
        let id = host.hako("run", "-d", host.busybox, "sleep", "60").out
        try #require(id.count == 64)
        let bridge = bridgeID()
        let held = leases(bridge)
        try #require(held.count == 1 && held.values.first == id, "\(held)")
        let addr = try #require(held.keys.first)
        let dir = "\(host.root)/networks/leases"
        // As the older hako left it.
        try FileManager.default.removeItem(atPath: "\(dir)/\(bridge)/\(addr)")
        let legacy = "\(dir)/\(bridge).json"
        #expect(FileManager.default.createFile(atPath: legacy, contents: Data("{\"\(addr)\":\"\(id)\"}".utf8)))

        let clash = host.hako("run", "--rm", "--ip", addr, host.busybox, "true")
        #expect(clash.status == 125 && clash.stderr.contains("already in use"), "\(clash.status) \(clash.stderr)")
        #expect(!exists(legacy), "the old file is gone")
        #expect(leases(bridge) == [addr: id], "\(leases(bridge))")
        let other = host.hako("run", "--rm", host.busybox, "ip", "-o", "-4", "addr", "show", "eth0")
        #expect(other.status == 0 && other.stdout.contains("172.17.") && !other.stdout.contains(addr + "/"), "\(other.stdout) \(other.stderr)")
        #expect(host.hako("rm", "-f", id).status == 0)
        #expect(host.eventually(10) { leases(bridge).isEmpty }, "\(leases(bridge))")
    }

    /// Runs in parallel get distinct addresses (one link each); removals in
    /// parallel race the monitors' own release; back-to-back runs asking for
    /// one address take it from the ended container whose monitor may still
    /// be releasing it. Nothing is left.
    @Test func concurrentRunsRemovalsAndOneAddressBackToBack() throws {
        let n = 8
        let pids = (0..<n).map { i in
            Subprocess.spawn(host.prefix + [Binaries.hako, "run", "-d", "--name", "c\(i)", host.busybox, "sleep", "60"], env: host.env)
        }
        let codes = pids.map { Subprocess.waitBounded($0, timeout: 60) }
        #expect(codes.allSatisfy { $0 == 0 }, "\(codes)")
        let bridge = bridgeID()
        let held = leases(bridge)
        #expect(held.count == n && Set(held.values).count == n, "one address each: \(held)")
        let inspected = (0..<n).map { host.hako("inspect", "--format", "{{.NetworkSettings.IPAddress}}", "c\($0)").out }
        #expect(Set(inspected) == Set(held.keys), "\(inspected) \(held)")

        let removals = (0..<n).map { i in Subprocess.spawn(host.prefix + [Binaries.hako, "rm", "-f", "c\(i)"], env: host.env) }
        let removed = removals.map { Subprocess.waitBounded($0, timeout: 60) }
        #expect(removed.allSatisfy { $0 == 0 }, "\(removed)")

        for i in 0..<10 {
            let r = host.hako("run", "--rm", "--ip", "172.17.0.99", host.busybox, "true")
            #expect(r.status == 0, "run \(i): \(r.stderr)")
        }
        #expect(host.eventually(20) { entries("\(host.runRoot)/containers").isEmpty }, "every monitor ended")
        #expect(host.containerIDs().isEmpty)
        #expect(leases(bridge).isEmpty, "\(leases(bridge))")
        #expect(entries("\(host.runRoot)/networks/endpoints").isEmpty, "\(entries("\(host.runRoot)/networks/endpoints"))")
        #expect(entries("\(host.runRoot)/netns").isEmpty)
        #expect(vethGone())
    }
}
