@testable import HakoCluster
import HakoEngine
import HakoNetwork
import HakoSystem
import Testing

/// A task's cluster networks on its node: which engine network it is created
/// on, its nameserver, and the node's networks read from the peer map.
@Suite struct NodeNetworkTests {
    func container(first: String?, dns: String, _ change: (inout ServiceSpec) -> Void) throws -> ContainerSpec {
        var spec = ServiceSpec(name: "api", image: "busybox:test")
        change(&spec)
        let a = Assignment(taskID: "abcdefghijklmnopqrstuvwxy", serviceID: "s", name: "api.1", slot: 1, version: 1, spec: spec,
                           desired: .running, state: .assigned)
        return try EngineTaskRuntime.containerSpec(a, node: "n1", dns: IPv4Address(dns), first: first, hostname: "pi1")
    }

    @Test func createdOnItsFirstNetworkElseTheClusterOneWhenItPublishes() throws {
        let only = try container(first: "hako-cluster-4097", dns: "10.96.0.1") {
            $0.networks = [NetworkAttachment(target: "front", id: "f0"), NetworkAttachment(target: "back", id: "b0")]
        }
        #expect(only.network == .bridge && only.networking.network == "hako-cluster-4097")
        #expect(only.networking.dns == [IPv4Address("10.96.0.1")!], "the node's responder on its first network's gateway")
        let publishing = try container(first: "hako-cluster-4097", dns: "10.88.1.1") {
            $0.networks = [NetworkAttachment(target: "front", id: "f0")]
            $0.ports = ["8080:80"]
        }
        #expect(publishing.networking.network == "hako-cluster", "on the cluster network first: its ports and the mesh reach it there")
        #expect(publishing.networking.ports.count == 1)
        let plain = try container(first: nil, dns: "10.88.1.1") { _ in }
        #expect(plain.networking.network == "hako-cluster")
    }

    @Test func theNodesNetworksFromThePeerMap() {
        let map = OverlayMessage(clusterCIDR: "10.88.0.0/16", vni: 4096, port: 4789, peers: [], networks: [
            OverlayNetwork(id: "f0", name: "front", vni: 4097, subnet: "10.96.0.0/20", subnets: ["n1": "10.96.0.0/26", "n2": "10.96.0.64/26"]),
            OverlayNetwork(id: "b0", name: "back", vni: 4098, subnet: "10.96.16.0/20", subnets: ["n2": "10.96.16.0/26"]),
            OverlayNetwork(id: "x0", name: "bad", vni: 4099, subnet: "nonsense", subnets: ["n1": "10.96.32.0/26"]),
        ])
        let mine = NodeNetwork.from(map, node: "n1")
        #expect(Array(mine.keys) == ["f0"], "only those with a subnet here, and parsable")
        let f = mine["f0"]
        #expect(f?.subnet == IPv4Network("10.96.0.0/26") && f?.cidr == IPv4Network("10.96.0.0/20") && f?.vni == 4097)
        #expect(f?.engineName == "hako-cluster-4097" && f?.bridge == "hako.br4097")
        #expect(NodeNetwork.from(nil, node: "n1").isEmpty)
        #expect(EngineTaskRuntime.isClusterNetwork("hako-cluster") && EngineTaskRuntime.isClusterNetwork("hako-cluster-4097"))
        #expect(!EngineTaskRuntime.isClusterNetwork("bridge") && !EngineTaskRuntime.isClusterNetwork("hako-clusterx"))
    }
}
