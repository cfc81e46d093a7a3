#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// The upgrade path on a one-node cluster: the agent stopped with SIGTERM
/// (as systemd does with KillMode=process), a new build installed in another
/// place and started: the container kept running throughout and is adopted,
/// not restarted. The new agent serves metrics; the coordinator stops cleanly too.
@Suite(.needsRoot, .serialized)
final class UpgradeTests {
    let h = ClusterHarness("up", nodes: 1)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    func stopCleanly(_ pid: pid_t) -> Int32 {
        kill(pid, SIGTERM)
        return Subprocess.waitBounded(pid, timeout: 20)
    }

    func log(_ prefix: String, in dir: String) -> String {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(prefix) }.sorted()
        return files.map { (try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8)) ?? "" }.joined()
    }

    @Test func agentRestartedFromANewInstallKeepsAndAdoptsItsContainer() throws {
        let create = h.cluster(["service", "create", "--name", "up", "--replicas", "1", "--stop-timeout", "1", "--wait", "--timeout", "60s",
                                "busybox:test", "sleep", "3600"])
        try #require(create.status == 0, "\(create.stderr)")
        let before = h.running("up")
        try #require(before[0].count == 1)
        let node = h.nodes[0]

        // SIGTERM: the agent says so, stops and exits 0; the container stays.
        #expect(stopCleanly(node.agent) == 0, "the agent exits 0 on SIGTERM")
        h.nodes[0].agent = 0
        let oldLog = log("agent.log", in: node.dir)
        #expect(oldLog.contains("SIGTERM: stopping") && oldLog.contains("stopped (containers keep running)"), "\(oldLog.suffix(400))")
        #expect(h.running("up") == before)

        // The new version, installed elsewhere, with metrics switched on.
        let v2 = h.base + "/v2"
        try FileManager.default.createDirectory(atPath: v2, withIntermediateDirectories: true)
        // Copied through a close-on-exec descriptor: a copy's write descriptor that
        // leaks into a process another test spawns meanwhile keeps the binary
        // "text file busy" for that process's whole life. A spawn racing the
        // copy holds it only until its exec, hence the bounded wait below.
        for b in ["hako", "hako-monitor"] { try FS.writeFile(v2 + "/" + b, try FS.readFile(Binaries.dir + "/" + b), mode: 0o755) }
        #expect(h.eventually(10) { Subprocess.run([v2 + "/hako", "--version"]).status == 0 }, "the copied hako runs")
        let config = try String(contentsOfFile: node.config, encoding: .utf8)
        try ("metrics_listen = \"9411\"\n" + config).write(toFile: node.config, atomically: false, encoding: .utf8)
        h.nodes[0].agent = Subprocess.spawn(["/usr/bin/nsenter", "--net=/run/netns/\(node.netns)", "--", v2 + "/hako", "agent", "--config", node.config],
                                            env: ["HAKO_MONITOR": v2 + "/hako-monitor"],
                                            stderr: node.dir + "/agent.log.v2")
        let ready = h.eventually(20) { self.h.readyNodes() == 1 }
        if !ready { h.failed = true }  // the logs, printed at the end, say why
        #expect(ready, "the new agent is ready")
        usleep(1_000_000)
        #expect(h.running("up") == before, "the same container, not restarted nor replaced")
        let inspect = Subprocess.run([Binaries.hako, "inspect"] + before[0], env: node.env).stdout
        #expect(inspect.contains("\"RestartCount\" : 0"), "\(inspect.prefix(300))")

        // The new agent's metrics, from inside the node's namespace (loopback).
        var metrics = ""
        _ = h.eventually(10) {
            metrics = Subprocess.run(["/usr/bin/nsenter", "--net=/run/netns/\(node.netns)", "--", "/usr/bin/curl", "-sf", "http://127.0.0.1:9411/metrics"]).stdout
            return metrics.contains("hako_agent_task_containers{state=\"running\"} 1")
        }
        #expect(metrics.contains("# TYPE hako_agent_container_cpu_seconds_total counter"), "\(metrics)")
        #expect(metrics.contains("hako_agent_containers_running 1"), "\(metrics)")
        #expect(metrics.contains("hako_agent_container_memory_bytes{container=\"\(before[0][0].prefix(12))\""), "\(metrics)")

        // The coordinator stops cleanly on SIGTERM too, and comes back with the cluster.
        #expect(stopCleanly(h.coordinator) == 0, "the coordinator exits 0 on SIGTERM")
        h.coordinator = 0
        #expect(log("coordinator.log", in: h.base).contains("stopped"))
        h.startCoordinator()
        #expect(h.eventually(20) { self.h.readyNodes() == 1 })
        #expect(h.running("up") == before)
        h.cluster("service", "rm", "up")
        #expect(h.eventually(30) { self.h.runningCount("up").reduce(0, +) == 0 })
    }
}
