#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import HakoCluster
import HakoSystem
import Testing

/// The Prometheus endpoint: exposition text (golden), the coordinator's and
/// the agent's families, the HTTP server on a live coordinator, the config key.
@Suite(.serialized) struct MetricsTests {
    @Test func expositionGolden() {
        var h = Histogram(bounds: [0.1, 1])
        h.observe(0.05)
        h.observe(0.5)
        h.observe(7)
        let text = Exposition.render([
            MetricFamily("hako_x_total", .counter, help: "Things \\ counted.\nTwo lines.", samples: [.init(value: 3)]),
            MetricFamily("hako_y", .gauge, help: "Escapes.", samples: [.init(labels: [("name", "a\"b\\c\nd"), ("z", "")], value: 1.5)]),
            h.family("hako_latency_seconds", help: "Latency."),
        ])
        #expect(text == """
            # HELP hako_x_total Things \\\\ counted.\\nTwo lines.
            # TYPE hako_x_total counter
            hako_x_total 3
            # HELP hako_y Escapes.
            # TYPE hako_y gauge
            hako_y{name="a\\"b\\\\c\\nd",z=""} 1.5
            # HELP hako_latency_seconds Latency.
            # TYPE hako_latency_seconds histogram
            hako_latency_seconds_bucket{le="0.1"} 1
            hako_latency_seconds_bucket{le="1"} 2
            hako_latency_seconds_bucket{le="+Inf"} 3
            hako_latency_seconds_sum 7.55
            hako_latency_seconds_count 3

            """)
        let parsed = try? ExpositionParser.parse(text)
        #expect(parsed?.count == 3)
        #expect(parsed?[1].samples.first?.labels["name"] == "a\"b\\c\nd", "escapes round-trip")
        #expect(parsed?[0].help == "Things \\ counted.\nTwo lines.")
    }

    @Test func theParserCatchesBrokenText() {
        for bad in ["1bad 1\n", "x{a=\"b} 1\n", "x{a=\"\\t\"} 1\n", "x{__a=\"b\"} 1\n", "x 1\ny 2\nx 3\n", "x one\n", "# TYPE x gauge\n# TYPE x gauge\n",
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", "x 1"] {
            #expect(throws: ExpositionParser.Failure.self, "\(bad)") { try ExpositionParser.parse(bad) }
        }
        #expect(Exposition.isMetricName("hako_cluster:x_1") && !Exposition.isMetricName("9x") && !Exposition.isMetricName("a-b"))
        #expect(Exposition.isLabelName("state") && !Exposition.isLabelName("__name") && !Exposition.isLabelName("a:b"))
        #expect(Exposition.format(.infinity) == "+Inf" && Exposition.format(2) == "2" && Exposition.format(0.25) == "0.25")
    }

    func sample(_ families: [ExpositionParser.Family], _ name: String, _ labels: [String: String] = [:]) -> Double? {
        families.flatMap(\.samples).first { $0.name == name && $0.labels == labels }?.value
    }

    @Test func coordinatorFamiliesFollowTheCluster() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        var spec = ServiceSpec(name: "web", image: "busybox:test")
        spec.replicas = 3
        _ = try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: spec), as: ServiceView.self)
        try settle(f, nodes)
        for n in nodes { try n.heartbeat() }
        let text = Exposition.render(f.core.metricFamilies())
        let m = try ExpositionParser.parse(text)
        for fam in m {
            #expect(fam.help != nil && fam.type != nil, "\(fam.name)")
            #expect(fam.name.hasPrefix("hako_cluster_"))
        }
        #expect(sample(m, "hako_cluster_nodes", ["state": "ready"]) == 2)
        #expect(sample(m, "hako_cluster_nodes", ["state": "down"]) == 0)
        #expect(sample(m, "hako_cluster_tasks", ["state": "running"]) == 3)
        #expect(sample(m, "hako_cluster_services") == 1)
        #expect(sample(m, "hako_cluster_placements_total") == 3)
        #expect(sample(m, "hako_cluster_scheduling_latency_seconds_count") == 3)
        #expect((sample(m, "hako_cluster_heartbeats_received_total") ?? 0) >= 2)
        // A node gone silent past the grace period is counted as down.
        f.clock.advance(5)
        f.core.tick()
        let later = try ExpositionParser.parse(Exposition.render(f.core.metricFamilies()))
        #expect(sample(later, "hako_cluster_nodes", ["state": "down"]) == 2)
    }

    @Test func agentFamilies() throws {
        let snap = AgentMetricsSnapshot(
            observed: [ObservedTask(taskID: "t1", containerID: String(repeating: "a", count: 64), status: .running, restartCount: 2),
                       ObservedTask(taskID: "t2", containerID: String(repeating: "b", count: 64), status: .exited)],
            runningContainers: 2, assigned: 2, connected: true,
            usage: [ContainerUsage(containerID: String(repeating: "a", count: 64), name: "web.1", taskID: "t1", cpuSeconds: 1.25, memoryBytes: 4096,
                                   network: (received: 1500, transmitted: 600), blockRead: 8192, blockWritten: 512),
                    ContainerUsage(containerID: String(repeating: "c", count: 64), name: "by \"hand\"", taskID: "", cpuSeconds: nil, memoryBytes: 10)])
        let m = try ExpositionParser.parse(Exposition.render(snap.families()))
        let a = ["container": "aaaaaaaaaaaa", "name": "web.1", "task": "t1"]
        #expect(sample(m, "hako_agent_task_containers", ["state": "running"]) == 1)
        #expect(sample(m, "hako_agent_task_containers", ["state": "exited"]) == 1)
        #expect(sample(m, "hako_agent_containers_running") == 2)
        #expect(sample(m, "hako_agent_connected") == 1)
        #expect(sample(m, "hako_agent_container_restarts_total", a) == 2)
        #expect(sample(m, "hako_agent_container_cpu_seconds_total", a) == 1.25)
        #expect(sample(m, "hako_agent_container_memory_bytes", a) == 4096)
        #expect(sample(m, "hako_agent_container_memory_bytes", ["container": "cccccccccccc", "name": "by \"hand\"", "task": ""]) == 10)
        #expect(sample(m, "hako_agent_container_network_receive_bytes_total", a) == 1500)
        #expect(sample(m, "hako_agent_container_network_transmit_bytes_total", a) == 600)
        #expect(sample(m, "hako_agent_container_block_read_bytes_total", a) == 8192)
        #expect(sample(m, "hako_agent_container_block_written_bytes_total", a) == 512)
        #expect(sample(m, "hako_agent_container_network_receive_bytes_total", ["container": "cccccccccccc", "name": "by \"hand\"", "task": ""]) == nil)
        #expect(sample(m, "hako_build_info", ["version": Agent.version]) == 1)
    }

    /// A Raspberry Pi 4's /proc and /sys (as files in a fake tree): CPU,
    /// memory, the data root, the SD card's writes, the SoC's temperature
    /// and the firmware's throttling flags (under-voltage since boot).
    static let fakePi: [String: String] = [
        "/proc/stat": "cpu  4705 150 1120 16250 520 0 13 0 0 0\ncpu0 1000 20 300 4000 100 0 5 0 0 0\n",
        "/proc/meminfo": "MemTotal:        3884136 kB\nMemFree:          100000 kB\nMemAvailable:    3302500 kB\n",
        "/proc/diskstats": "   1       0 ram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n 179       0 mmcblk0 9121 3521 738546 4519 2480 3046 88304 8828 0 9340 13348 0 0 0 0 0 0\n"
            + " 179       1 mmcblk0p1 226 0 4618 60 1 0 1 0 0 84 60 0 0 0 0 0 0\n   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        "/sys/class/thermal/thermal_zone0/temp": "51121\n",
        "/sys/class/thermal/thermal_zone0/type": "cpu-thermal\n",
        "/sys/devices/platform/soc/soc:firmware/get_throttled": "50000\n",
    ]

    @Test func nodeResourcesOfAPi() throws {
        let files = Self.fakePi
        let node = NodeResources(read: { files[$0] }, list: { dir in
            dir == "/sys/block" ? ["mmcblk0", "loop0", "ram0"] : dir == "/sys/class/thermal" ? ["cooling_device0", "thermal_zone0"] : []
        }, fileSystem: { $0 == "/var/lib/hako" ? (size: 31_000_000_000, free: 20_000_000_000) : nil }, dataRoot: "/var/lib/hako", ticksPerSecond: 100)
        let m = try ExpositionParser.parse(Exposition.render(node.families()))
        #expect(sample(m, "hako_node_cpu_seconds_total", ["mode": "user"]) == 47.05)
        #expect(sample(m, "hako_node_cpu_seconds_total", ["mode": "idle"]) == 162.5)
        #expect(sample(m, "hako_node_memory_bytes", ["kind": "total"]) == Double(3_884_136 * 1024))
        #expect(sample(m, "hako_node_memory_bytes", ["kind": "available"]) == Double(3_302_500 * 1024))
        #expect(sample(m, "hako_node_data_root_bytes", ["kind": "free"]) == 20_000_000_000)
        #expect(sample(m, "hako_node_disk_written_bytes_total", ["device": "mmcblk0"]) == Double(88304 * 512))
        #expect(sample(m, "hako_node_disk_written_bytes_total", ["device": "mmcblk0p1"]) == nil, "whole disks only")
        #expect(sample(m, "hako_node_disk_written_bytes_total", ["device": "loop0"]) == nil)
        #expect(sample(m, "hako_node_temperature_celsius", ["zone": "cpu-thermal"]) == 51.121)
        #expect(sample(m, "hako_node_throttled", ["when": "now"]) == 0)
        #expect(sample(m, "hako_node_throttled", ["when": "since_boot"]) == 1)
        // Not a Pi (no firmware flags, no thermal zone): those families are left out, the rest stay.
        let plain = NodeResources(read: { $0.hasPrefix("/proc") ? files[$0] : nil }, list: { _ in [] }, fileSystem: { _ in nil }, dataRoot: "/x")
        let names = Set(try ExpositionParser.parse(Exposition.render(plain.families())).map(\.name))
        #expect(names == ["hako_node_cpu_seconds_total", "hako_node_memory_bytes", "hako_node_disk_written_bytes_total"], "\(names)")
        // This machine's own files parse too.
        let here = try ExpositionParser.parse(Exposition.render(NodeResources.host(dataRoot: "/").families()))
        #expect((sample(here, "hako_node_memory_bytes", ["kind": "total"]) ?? 0) > 0)
    }

    /// deploy/prometheus.yml and deploy/hako-alerts.yml name only metrics hako exports.
    @Test func theAlertRulesUseMetricsHakoExports() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let rules = try String(contentsOfFile: root + "/deploy/hako-alerts.yml", encoding: .utf8)
        let scrape = try String(contentsOfFile: root + "/deploy/prometheus.yml", encoding: .utf8)
        #expect(scrape.contains("hako-alerts.yml") && scrape.contains("127.0.0.1:9410") && scrape.contains("127.0.0.1:9411"))
        let f = try CoreFixture()
        let files = Self.fakePi
        let node = NodeResources(read: { files[$0] }, list: { $0 == "/sys/block" ? ["mmcblk0"] : $0 == "/sys/class/thermal" ? ["thermal_zone0"] : [] },
                                 fileSystem: { _ in (1, 1) }, dataRoot: "/")
        let agent = AgentMetricsSnapshot(observed: [], runningContainers: 0, assigned: 0, connected: true, usage: [], node: node.families())
        var exported = Set((f.core.metricFamilies() + agent.families()).map(\.name))
        exported.formUnion(exported.map { $0 + "_bucket" })
        var used: Set<String> = []
        var rest = Substring(rules)
        while let r = rest.range(of: "hako_") {
            let name = rest[r.lowerBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" }
            used.insert(String(name))
            rest = rest[r.upperBound...]
        }
        used.remove("hako_")
        #expect(!used.isEmpty)
        #expect(used.isSubset(of: exported), "not exported: \(used.subtracting(exported).sorted())")
        for alert in ["HakoNodeDown", "HakoTaskRestarting", "HakoSDCardWrites", "HakoNodeThrottled"] {
            #expect(rules.contains("alert: \(alert)"), "\(alert)")
        }
    }

    /// GET over a plain TCP socket; the raw response.
    static func get(_ port: UInt16, _ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(rc == 0)
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<1000 {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func liveCoordinatorServesMetrics() throws {
        let live = try LiveCoordinator(configure: { $0.metricsListen = Endpoint(host: "127.0.0.1", port: 0) })
        let port = try #require(live.coordinator.metricsServer?.port)
        #expect(live.logged("metrics on http://127.0.0.1:\(port)/metrics"))
        let r = try Self.get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let parts = r.components(separatedBy: "\r\n\r\n")
        try #require(parts.count == 2, "\(r)")
        #expect(parts[0].hasPrefix("HTTP/1.1 200 OK"))
        #expect(parts[0].contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"))
        #expect(parts[0].contains("Content-Length: \(parts[1].utf8.count)"))
        let m = try ExpositionParser.parse(parts[1])
        #expect(m.contains { $0.name == "hako_cluster_scheduling_latency_seconds" && $0.type == "histogram" })
        #expect(sample(m, "hako_cluster_nodes", ["state": "ready"]) == 0)
        #expect(try Self.get(port, "GET /nope HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        let health = try Self.get(port, "GET /healthz HTTP/1.0\r\n\r\n")
        #expect(health.hasPrefix("HTTP/1.1 200") && health.hasSuffix("\r\n\r\nok\n"), "\(health)")
        #expect(try Self.get(port, "POST /metrics HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 405"))
        #expect(try Self.get(port, "hello\r\n\r\n").hasPrefix("HTTP/1.1 400"))
        let head = try Self.get(port, "HEAD /metrics HTTP/1.1\r\n\r\n")
        #expect(head.hasPrefix("HTTP/1.1 200") && head.hasSuffix("\r\n\r\n"))
        // A client that never finishes its request does not hold up the others.
        let idle = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(idle) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(idle, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(rc == 0)
        _ = "GET /met".withCString { send(idle, $0, strlen($0), 0) }
        #expect(try Self.get(port, "GET /metrics HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 200"))
    }

    @Test func metricsListenSetting() throws {
        func parse(_ v: String) throws -> Endpoint? {
            try CoordinatorConfig.parse(try ConfigFile(parsing: "metrics_listen = \"\(v)\"")).metricsListen
        }
        #expect(try CoordinatorConfig.parse(ConfigFile()).metricsListen == nil, "off by default")
        #expect(try parse("") == nil)
        #expect(try parse("9410") == Endpoint(host: "127.0.0.1", port: 9410), "a port alone: loopback")
        #expect(try parse(":9410") == Endpoint(host: "127.0.0.1", port: 9410))
        #expect(try parse("0.0.0.0:9410") == Endpoint(host: "0.0.0.0", port: 9410))
        #expect(try parse("[::1]:9410") == Endpoint(host: "::1", port: 9410))
        do { _ = try parse("127.0.0.1:http"); Issue.record("accepted") } catch {
            if case .config(let key, let reason)? = error as? ClusterError { #expect(key == "metrics_listen" && reason.contains("invalid port")) } else { Issue.record("\(error)") }
        }
        #expect(try AgentConfig.parse(try ConfigFile(parsing: "metrics_listen = \"9411\"")).metricsListen == Endpoint(host: "127.0.0.1", port: 9411))
        #expect(throws: ClusterError.config(key: "metrics_listen", reason: "expected a string, found an integer")) {
            try AgentConfig.parse(try ConfigFile(parsing: "metrics_listen = 9411"))
        }
    }

    @Test func requestHeads() {
        #expect(HTTPRequestHead.parse(Array("GET /metrics HTTP/1.1\r\nHost: a\r\n".utf8)) == nil, "not complete yet")
        #expect(HTTPRequestHead.parse(Array("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n".utf8)) == HTTPRequestHead(method: "GET", target: "/metrics"))
        #expect(HTTPRequestHead.parse(Array("GET /metrics?x=1 HTTP/1.0\n\n".utf8)) == HTTPRequestHead(method: "GET", target: "/metrics?x=1"))
        #expect(HTTPRequestHead.parse(Array("garbage\r\n\r\n".utf8))?.method == "")
    }
}
