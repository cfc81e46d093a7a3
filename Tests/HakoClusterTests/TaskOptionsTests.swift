@testable import HakoCluster
import HakoEngine
import HakoNetwork
import HakoSystem
import Testing

/// What the agent asks of the engine for a task: its network, published
/// ports and limits, typed from the service spec.
@Suite struct TaskOptionsTests {
    func spec(_ change: (inout ServiceSpec) -> Void) throws -> ContainerSpec {
        var spec = ServiceSpec(name: "web", image: "registry.lan:5000/web:1")
        change(&spec)
        let a = Assignment(taskID: "abcdefghijklmnopqrstuvwxy", serviceID: "s", name: "web.2", slot: 2, version: 1, spec: spec,
                           desired: .running, state: .assigned)
        return try EngineTaskRuntime.containerSpec(a, node: "n1")
    }

    @Test func theClusterNetworkWithPortsAndLimits() throws {
        let o = try spec {
            $0.ports = ["8080:80", "53/udp"]
            $0.limits = Resources(cpuMillis: 1500, memory: 64 << 20)
            $0.reservations = Resources(cpuMillis: 250, memory: 32 << 20)
            $0.restart = "on-failure:2"
            $0.stopSignal = "SIGINT"
        }
        #expect(o.name == "web.2.abcdefghijkl")
        #expect(o.network == .bridge && o.networking.network == "hako-cluster")
        #expect(o.networking.ports == (try PortBinding.parse("8080:80") + PortBinding.parse("53/udp")))
        #expect(o.resources.nanoCPUs == 1_500_000_000 && o.resources.memory == 64 << 20, "limits as numbers, not the flags' text")
        #expect(o.resources.memoryReservation == 32 << 20, "a reservation is the soft limit")
        #expect(o.labels["hako.cluster.node"] == "n1" && o.labels["hako.cluster.slot"] == "2")
        #expect(o.restart == .onFailure(maxRetries: 2) && o.stopSignal == 2)
    }

    @Test func hostAndNoneNetworksPublishNothing() throws {
        let h = try spec { $0.network = "host" }
        #expect(h.network == .host && h.networking.network == nil && h.networking.ports.isEmpty)
        let n = try spec { $0.network = "none" }
        #expect(n.network == .none && n.resources.nanoCPUs == nil && n.resources.memory == nil)
    }

    @Test func aBadStopSignalIsRefused() {
        #expect(throws: HakoError.self) { try spec { $0.stopSignal = "SIGNOPE" } }
    }
}
