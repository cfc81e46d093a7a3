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
                                   networkReceiveBytes: 1500, networkTransmitBytes: 700, blockReadBytes: 8192, blockWriteBytes: 512),
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
        #expect(sample(m, "hako_agent_container_network_transmit_bytes_total", a) == 700)
        #expect(sample(m, "hako_agent_container_block_read_bytes_total", a) == 8192)
        #expect(sample(m, "hako_agent_container_block_write_bytes_total", a) == 512)
        #expect(sample(m, "hako_agent_container_block_write_bytes_total", ["container": "cccccccccccc", "name": "by \"hand\"", "task": ""]) == nil,
                "no figure, no sample")
        #expect(sample(m, "hako_build_info", ["version": Agent.version, "role": "agent"]) == 1)
    }

    /// A node's resources from a procfs and sysfs tree made here: a Pi with
    /// an SD card, two thermal zones of one type, and the firmware's flags.
    @Test func nodeResourcesFromProcAndSys() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("hako-node-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        func put(_ path: String, _ text: String) throws {
            let full = base + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
        try put("proc/stat", "cpu  1000 20 300 50000 40 0 6 0 0 0\ncpu0 500 10 150 25000 20 0 3 0 0 0\nintr 1\n")
        try put("proc/meminfo", "MemTotal:        3884096 kB\nMemFree:          100 kB\nMemAvailable:    2000000 kB\n")
        try put("proc/diskstats", "   1       0 ram0 1 0 8 0 0 0 0 0 0 0 0\n 179       0 mmcblk0 100 0 2048 30 400 0 8192 90 0 0 0\n 179       1 mmcblk0p1 1 0 8 0 1 0 8 0 0 0 0\n   7       0 loop0 5 0 80 0 0 0 0 0 0 0 0\n")
        for d in ["mmcblk0", "loop0", "ram0"] { try FileManager.default.createDirectory(atPath: base + "/sys/block/" + d, withIntermediateDirectories: true) }
        try put("sys/class/thermal/thermal_zone0/temp", "51234\n")
        try put("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
        try put("sys/class/thermal/thermal_zone1/temp", "40000\n")
        try put("sys/class/thermal/thermal_zone1/type", "cpu-thermal\n")
        try put("sys/devices/platform/soc/soc:firmware/get_throttled", "0x50005\n")
        let r = NodeResources.read(dataRoot: base, proc: base + "/proc", sys: base + "/sys")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let user: Double = 1000 / ticks, idle: Double = 50000 / ticks
        #expect(r.cpuSeconds["user"] == user)
        #expect(r.cpuSeconds["idle"] == idle)
        #expect(r.cpuSeconds["steal"] == 0)
        let total: UInt64 = 3884096 * 1024, available: UInt64 = 2000000 * 1024
        #expect(r.memoryTotalBytes == total)
        #expect(r.memoryAvailableBytes == available)
        let sd = NodeResources.Disk(readBytes: 2048 * 512, writtenBytes: 8192 * 512)
        #expect(r.disks == ["mmcblk0": sd], "whole disks only: \(r.disks)")
        #expect(r.temperatures == ["cpu-thermal": 51.234, "cpu-thermal-1": 40])
        #expect(r.throttled == 0x50005)
        #expect((r.dataRoot?.sizeBytes ?? 0) > 0 && r.dataRoot?.path == base)
        let m = try ExpositionParser.parse(Exposition.render(r.families()))
        let system: Double = 300 / ticks
        #expect(sample(m, "hako_node_cpu_seconds_total", ["mode": "system"]) == system)
        #expect(sample(m, "hako_node_memory_available_bytes") == Double(available))
        #expect(sample(m, "hako_node_disk_written_bytes_total", ["device": "mmcblk0"]) == Double(sd.writtenBytes))
        #expect(sample(m, "hako_node_temperature_celsius", ["zone": "cpu-thermal"]) == 51.234)
        #expect(sample(m, "hako_node_throttled", ["reason": "under_voltage"]) == 1)
        #expect(sample(m, "hako_node_throttled", ["reason": "throttled"]) == 1)
        #expect(sample(m, "hako_node_throttled", ["reason": "frequency_capped"]) == 0)
        #expect(sample(m, "hako_node_throttled_since_boot", ["reason": "under_voltage"]) == 1)
        #expect(sample(m, "hako_node_throttled_since_boot", ["reason": "throttled"]) == 1)
        #expect(sample(m, "hako_node_throttled_since_boot", ["reason": "soft_temperature_limit"]) == 0)
        #expect(sample(m, "hako_node_filesystem_size_bytes", ["path": base]) == Double(r.dataRoot?.sizeBytes ?? 0))

        // A host without thermal zones or Pi firmware (this one, a VM) simply has no such families.
        let host = NodeResources.read(dataRoot: "/")
        #expect((host.memoryTotalBytes ?? 0) > 0 && (host.cpuSeconds["idle"] ?? 0) > 0 && host.dataRoot != nil)
        let bare = NodeResources.read(dataRoot: base + "/none", proc: base + "/none", sys: base + "/none")
        #expect(bare == NodeResources() && bare.families().isEmpty)
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
        #expect(sample(m, "hako_build_info", ["version": Agent.version, "role": "coordinator"]) == 1)
        let health = try Self.get(port, "GET /healthz HTTP/1.1\r\n\r\n")
        #expect(health.hasPrefix("HTTP/1.1 200") && health.hasSuffix("\r\n\r\nok\n"), "\(health)")
        #expect(try Self.get(port, "GET /nope HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.1 404"))
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

    /// deploy/prometheus/hako-alerts.yml names only metrics hako serves (a
    /// renamed metric must not leave an alert that can never fire).
    @Test func alertRulesNameServedMetrics() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let rules = try String(contentsOfFile: repo + "/deploy/prometheus/hako-alerts.yml", encoding: .utf8)
        var served = Set(try CoreFixture().core.metricFamilies().map(\.name))
        var node = NodeResources.read(dataRoot: "/")
        node.temperatures = ["cpu-thermal": 50]
        node.throttled = 0
        node.disks = ["mmcblk0": .init(readBytes: 0, writtenBytes: 0)]
        let usage = ContainerUsage(containerID: String(repeating: "a", count: 64), name: "n", taskID: "t", cpuSeconds: 0, memoryBytes: 0,
                                   networkReceiveBytes: 0, networkTransmitBytes: 0, blockReadBytes: 0, blockWriteBytes: 0)
        let agent = AgentMetricsSnapshot(observed: [], runningContainers: 0, assigned: 0, connected: true, usage: [usage], node: node)
        served.formUnion(agent.families().map(\.name))
        let exprs = rules.split(separator: "\n").filter { $0.contains("expr:") }
        #expect(exprs.count >= 8)
        for e in exprs {
            var names: [String] = []
            var current = ""
            for ch in e + " " {
                if ch.isLetter || ch.isNumber || ch == "_" { current.append(ch) } else {
                    if current.hasPrefix("hako_") { names.append(current) }
                    current = ""
                }
            }
            #expect(!names.isEmpty, "\(e)")
            for n in names { #expect(served.contains(n), "\(n) in \(e) is not a metric hako serves") }
        }
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
