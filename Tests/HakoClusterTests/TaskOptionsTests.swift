@testable import HakoCluster
import HakoEngine
import Testing

/// What the agent asks of the engine for a task: its network, published
/// ports and limits, from the service spec.
@Suite struct TaskOptionsTests {
    func options(_ change: (inout ServiceSpec) -> Void) throws -> RunOptions {
        var spec = ServiceSpec(name: "web", image: "registry.lan:5000/web:1")
        change(&spec)
        let a = Assignment(taskID: "abcdefghijklmnopqrstuvwxy", serviceID: "s", name: "web.2", slot: 2, version: 1, spec: spec,
                           desired: .running, state: .assigned)
        return try EngineTaskRuntime.runOptions(a, node: "n1")
    }

    @Test func theClusterNetworkWithPortsAndLimits() throws {
        let o = try options {
            $0.ports = ["8080:80", "53/udp"]
            $0.limits = Resources(cpuMillis: 1500, memory: 64 << 20)
            $0.reservations = Resources(cpuMillis: 250, memory: 32 << 20)
        }
        #expect(o.name == "web.2.abcdefghijkl")
        #expect(o.network == .bridge && o.networking.network == "hako-cluster")
        #expect(o.networking.publish == ["8080:80", "53/udp"])
        #expect(o.isolation.cpus == "1.500" && o.isolation.memory == String(64 << 20))
        #expect(o.isolation.memoryReservation == String(32 << 20), "a reservation is the soft limit")
        #expect(o.labels.contains("hako.cluster.node=n1") && o.labels.contains("hako.cluster.slot=2"))
    }

    @Test func hostAndNoneNetworksPublishNothing() throws {
        let h = try options { $0.network = "host" }
        #expect(h.network == .host && h.networking.network == nil && h.networking.publish.isEmpty)
        let n = try options { $0.network = "none" }
        #expect(n.network == .none && n.isolation.cpus == nil && n.isolation.memory == nil)
    }

    @Test func cpusAsTheEngineTakesThem() throws {
        #expect(EngineTaskRuntime.cpus(500) == "0.500")
        #expect(EngineTaskRuntime.cpus(2000) == "2.000")
        #expect(EngineTaskRuntime.cpus(1) == "0.001")
        #expect(EngineTaskRuntime.cpus(12345) == "12.345")
    }
}
