import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Cluster networks through the CLI on the harness: created with their own
/// VNI and CIDR, listed beside the built-in cluster network, named by a
/// service with an alias (shown by `service inspect`), its task run on the
/// network (its address there reported), refused removal while in use, gone
/// once removed (ClusterNetworksTests: what the nodes make of them).
@Suite(.needsRoot, .serialized)
final class ClusterNetworkObjectTests {
    let h = ClusterHarness("hn", nodes: 1)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    func inspect(_ name: String) -> [String: Any]? {
        let r = h.cluster("network", "inspect", name)
        return try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
    }

    @Test func createNameRefuseRemove() {
        #expect(h.cluster("network", "create", "-l", "team=a", "backend").status == 0)
        #expect(h.cluster("network", "create", "--subnet", "10.97.0.0/24", "front").status == 0)
        let again = h.cluster("network", "create", "backend")
        #expect(again.status == 125 && again.stderr.contains("already exists"), "\(again.stderr)")
        let reserved = h.cluster("network", "create", "cluster")
        #expect(reserved.status == 125 && reserved.stderr.contains("reserved"), "\(reserved.stderr)")
        let overlap = h.cluster("network", "create", "--subnet", "10.88.5.0/24", "bad")
        #expect(overlap.status == 125 && overlap.stderr.contains("overlaps"), "\(overlap.stderr)")

        let ls = h.json("network", "ls").map { $0["name"] as? String ?? "" }
        #expect(ls == ["cluster", "backend", "front"], "\(ls)")
        let backend = inspect("backend")
        #expect(backend?["subnet"] as? String == "10.96.0.0/20" && backend?["vni"] as? Int == 4097, "\(String(describing: backend))")
        #expect(inspect("front")?["vni"] as? Int == 4098 && inspect("front")?["nodePrefix"] as? Int == 28)

        let c = h.cluster(["service", "create", "--no-resolve-image", "--name", "db", "--network", "name=backend,alias=database",
                           "busybox:test", "sleep", "300"])
        #expect(c.status == 0, "\(c.stderr)")
        let view = h.cluster("service", "inspect", "db").stdout
        let spec = (try? JSONSerialization.jsonObject(with: Data(view.utf8)) as? [String: Any])?["spec"] as? [String: Any]
        let attached = (spec?["networks"] as? [[String: Any]])?.first
        #expect(attached?["target"] as? String == "backend" && attached?["aliases"] as? [String] == ["database"], "\(String(describing: spec))")
        #expect(inspect("backend")?["services"] as? [String] == ["db"])
        let unknown = h.cluster(["service", "create", "--no-resolve-image", "--name", "lost", "--network", "nowhere", "busybox:test"])
        #expect(unknown.status != 0 && unknown.stderr.contains("network not found: nowhere"), "\(unknown.stderr)")

        // The node runs the task on the network: its address there is in the network's CIDR, reported with the task.
        let backendID = backend?["id"] as? String ?? "?"
        var address: String?
        let runs = h.eventually(30) {
            address = h.tasks("db").first { $0["state"] as? String == "running" }.flatMap { ($0["networkAddresses"] as? [String: String])?[backendID] }
            return address != nil
        }
        #expect(runs && address?.hasPrefix("10.96.0.") == true, "\(h.tasks("db", all: true))")
        #expect(h.runningCount("db") == [1])
        let inUse = h.cluster("network", "rm", "backend")
        #expect(inUse.status == 125 && inUse.stderr.contains("in use by service db"), "\(inUse.stderr)")
        #expect(h.cluster("network", "rm", "cluster").status == 125)
        #expect(h.cluster("service", "rm", "db").status == 0)
        let rm = h.cluster("network", "rm", "backend", "front")
        #expect(rm.status == 0, "\(rm.stderr)")
        #expect(h.json("network", "ls").map { $0["name"] as? String ?? "" } == ["cluster"])
        #expect(h.cluster("network", "inspect", "backend").status == 125)
    }
}
