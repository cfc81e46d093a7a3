#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
#if canImport(HakoTestSupport)
import HakoTestSupport
#endif
import Testing

/// `hako cluster stack` on the harness: a Compose stack deployed, updated
/// (only the changed service's tasks replaced) and removed; a stack's
/// services finding each other by their short names on the stack's default
/// network, across nodes, and another stack's not finding them; the stack's secret and
/// config created from files, in their tasks only, and removed with it; a named volume kept
/// across its task's replacement; a `--device` service placed only on the
/// node that reports the device (a fake one: /dev/null's numbers, made by
/// the test under its own directory; named in no agent.toml: node2 reports
/// it because the service asks for it, nodes 1 and 3 refuse it with
/// `deny_devices`), and one naming a regular file placed nowhere.
@Suite(.needsRoot, .serialized)
final class ClusterStackTests {
    static let deviceDir = "/tmp/hako-stack-dev-\(getpid())"
    static let device = deviceDir + "/i2c-7"
    static let notADevice = deviceDir + "/spidev0.0"
    static let password = "kv-pass-\(getpid())-7d1f"
    let h: ClusterHarness

    init() {
        mkdir(ClusterStackTests.deviceDir, 0o700)
        let r = Subprocess.run(["/usr/bin/mknod", "-m", "666", ClusterStackTests.device, "c", "1", "3"])
        if r.status != 0 { Issue.record("mknod \(ClusterStackTests.device): \(r.stderr)") }
        _ = FileManager.default.createFile(atPath: ClusterStackTests.notADevice, contents: Data("x".utf8))
        // Nothing offered unasked (the host's own /dev stays out of `node inspect`); nodes 1 and 3 refuse the test's devices.
        let deny = "devices = []\ndeny_devices = [\"\(ClusterStackTests.deviceDir)/*\"]"
        h = ClusterHarness("sk", nodes: 3, agentSettings: [1: deny, 2: "devices = []", 3: deny])
    }

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
        unlink(ClusterStackTests.device)
        unlink(ClusterStackTests.notADevice)
        rmdir(ClusterStackTests.deviceDir)
    }

    func compose(web: String) -> String {
        """
        version: "3.8"
        x-quick: &quick
          stop_grace_period: 1s
        services:
          kv:
            <<: *quick
            image: busybox:test
            # Counts its starts in the volume, and serves the count.
            command: ["sh", "-c", "n=$$(cat /data/count 2>/dev/null || echo 0); echo $$((n + 1)) > /data/count; exec httpd -f -p 6379 -h /data"]
            volumes: ["kvdata:/data"]
            secrets: [{source: kvpass, mode: 0400}]
            deploy:
              placement: {constraints: ["node.name==node1"]}
          web:
            <<: *quick
            image: busybox:test
            command: ["sh", "-c", "mkdir -p /www && echo \(web) > /www/index.html && exec httpd -f -p 8080 -h /www"]
            ports: ["9092:8080"]
            hostname: "{{.Service.Name}}-{{.Task.Slot}}"
            environment: {WHERE: "{{.Node.ID}}"}
            configs: [{source: site, target: /etc/site.conf}]
            deploy:
              placement: {constraints: ["node.name!=node1"]}
          agent:
            <<: *quick
            image: busybox:test
            command: ["sleep", "3600"]
            deploy: {mode: global}
        volumes:
          kvdata: {}
        secrets:
          kvpass: {file: ./kvpass.txt}
        configs:
          site: {file: ./site.conf}
        """
    }

    func deploy(_ text: String, _ extra: [String] = []) -> Output {
        let file = h.base + "/compose.yml"
        h.write(h.base + "/kvpass.txt", ClusterStackTests.password)
        h.write(h.base + "/site.conf", "listen 8080\n")      // write() adds a newline
        h.write(file, text)
        return h.cluster(["stack", "deploy", "--resolve-image", "never", "-c", file] + extra + ["home"])
    }

    func taskIDs(_ service: String) -> Set<String> { Set(h.tasks(service).compactMap { $0["id"] as? String }) }

    func fetch(_ node: ClusterHarness.Node, port: Int, path: String = "/") -> String {
        h.underlay(["/usr/bin/curl", "-sS", "--max-time", "3", "http://\(node.address):\(port)\(path)"]).stdout
    }

    @Test func aStackDeployedUpdatedAndRemoved() throws {
        var r = deploy(compose(web: "web-v1"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Creating service home_kv") && r.stdout.contains("Creating service home_web") && r.stdout.contains("Creating service home_agent"),
                "\(r.stdout)")
        #expect(r.stdout.contains("Creating secret home_kvpass") && r.stdout.contains("Creating config home_site"), "\(r.stdout)")
        #expect(r.stdout.contains("Creating network home_default"), "\(r.stdout)")
        #expect(h.eventually(60) { self.h.runningCount("home_kv") == [1, 0, 0] && self.h.runningCount("home_web").reduce(0, +) == 1
                && self.h.runningCount("home_agent") == [1, 1, 1] },
                "\(h.runningCount("home_kv")) \(h.runningCount("home_web")) \(h.runningCount("home_agent"))")
        let ls = h.cluster("stack", "ls").out
        #expect(ls.contains("home") && ls.contains("3"), "\(ls)")
        let services = h.cluster("stack", "services", "home").out
        #expect(services.contains("home_kv") && services.contains("*:9092:8080/tcp"), "\(services)")
        #expect(h.json("service", "inspect", "home_web").first.flatMap { ($0["spec"] as? [String: Any])?["serviceLabels"] as? [String: String] }?["com.docker.stack.namespace"] == "home")

        // The web front end answers on the routing mesh's port on every node.
        #expect(h.eventually(30) { self.fetch(self.h.nodes[0], port: 9092).contains("web-v1") })

        // From the web's container, "kv" is the kv task on the stack's default network, and serves its count.
        let stackNetwork = try? JSONSerialization.jsonObject(with: Data(h.cluster("network", "inspect", "home_default").stdout.utf8)) as? [String: Any]
        let stackNetworkID = try #require(stackNetwork?["id"] as? String)
        let kvAddress = try #require((h.tasks("home_kv").first?["networkAddresses"] as? [String: String])?[stackNetworkID], "\(h.tasks("home_kv"))")
        let webNode = try #require(h.runningCount("home_web").firstIndex(of: 1))
        let web = try #require(h.running("home_web")[webNode].first)
        #expect(h.eventually(15) {
            self.h.onNode(self.h.nodes[webNode], ["exec", web, "nslookup", "kv"]).stdout.contains("Address: \(kvAddress)")
        }, "\(h.onNode(h.nodes[webNode], ["exec", web, "sh", "-c", "cat /etc/resolv.conf; nslookup kv"]).stdout)")
        // Swarm's templates, filled in on the node.
        let webTask = try #require(h.tasks("home_web").first)
        #expect(h.onNode(h.nodes[webNode], ["exec", web, "hostname"]).stdout == "home_web-1\n")
        #expect(h.onNode(h.nodes[webNode], ["exec", web, "sh", "-c", "echo $WHERE"]).out == webTask["nodeID"] as? String)
        #expect(h.onNode(h.nodes[webNode], ["exec", web, "sh", "-c", "printf 'GET /count HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \(kvAddress) 6379"]).stdout.hasSuffix("1\n"))

        // The named volume is the node's and outlives the task: a replacement on node1 counts on.
        let kv = try #require(h.running("home_kv")[0].first)
        #expect(h.onNode(h.nodes[0], ["volume", "ls", "-q"]).stdout.split(separator: "\n").contains("home_kvdata"))
        _ = h.onNode(h.nodes[0], ["rm", "-f", kv])
        #expect(h.eventually(30) { (self.h.running("home_kv")[0].first ?? kv) != kv })
        let kv2 = try #require(h.running("home_kv")[0].first)
        #expect(h.onNode(h.nodes[0], ["exec", kv2, "cat", "/data/count"]).stdout == "2\n")

        // The stack's secret, in its task only (mode 0400), and the config at its target; neither in inspect.
        #expect(h.onNode(h.nodes[0], ["exec", kv2, "cat", "/run/secrets/kvpass"]).stdout == ClusterStackTests.password + "\n", "the file as written")
        #expect(h.onNode(h.nodes[0], ["exec", kv2, "stat", "-c", "%a", "/run/secrets/kvpass"]).stdout == "400\n")
        #expect(h.onNode(h.nodes[webNode], ["exec", web, "cat", "/etc/site.conf"]).stdout == "listen 8080\n\n")
        #expect(h.onNode(h.nodes[webNode], ["exec", web, "test", "-e", "/run/secrets/kvpass"]).status != 0, "only kv's tasks get kv's secret")
        #expect(!h.cluster("service", "inspect", "home_kv").out.contains(ClusterStackTests.password))
        #expect(!h.cluster("secret", "inspect", "home_kvpass").out.contains(ClusterStackTests.password))

        // Deployed again unchanged: nothing moves. With web changed: only web's tasks are replaced.
        let before = (kv: taskIDs("home_kv"), web: taskIDs("home_web"), agent: taskIDs("home_agent"))
        r = deploy(compose(web: "web-v1"))
        #expect(r.status == 0 && !r.stdout.contains("Updating") && !r.stdout.contains("Creating"), "\(r.stdout) \(r.stderr)")
        r = deploy(compose(web: "web-v2"))
        #expect(r.status == 0 && r.stdout.contains("Updating service home_web (command)") && !r.stdout.contains("home_kv"), "\(r.stdout) \(r.stderr)")
        #expect(h.eventually(60) { self.fetch(self.h.nodes[2], port: 9092).contains("web-v2") })
        #expect(h.eventually(30) { self.taskIDs("home_web").isDisjoint(with: before.web) && self.h.runningCount("home_web").reduce(0, +) == 1 })
        #expect(taskIDs("home_kv") == before.kv && taskIDs("home_agent") == before.agent, "the unchanged services keep their tasks")

        // A service dropped from the file stays without --prune, goes with it.
        let noAgent = compose(web: "web-v2").replacingOccurrences(of: "  agent:\n    <<: *quick\n    image: busybox:test\n    command: [\"sleep\", \"3600\"]\n    deploy: {mode: global}\n", with: "")
        #expect(noAgent != compose(web: "web-v2"))
        r = deploy(noAgent)
        #expect(r.status == 0 && r.stderr.contains("home_agent is no longer in the files"), "\(r.stderr)")
        #expect(h.runningCount("home_agent") == [1, 1, 1])
        r = deploy(noAgent, ["--prune"])
        #expect(r.status == 0 && r.stdout.contains("Removing service home_agent"), "\(r.stdout)")
        #expect(h.eventually(30) { self.h.runningCount("home_agent") == [0, 0, 0] })

        // Removed: no service, task or container of the stack is left on any node.
        r = h.cluster("stack", "rm", "home")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(h.eventually(30) {
            self.h.nodes.allSatisfy { n in
                !self.h.onNode(n, ["ps", "-a", "--format", "{{.Names}}"]).stdout.contains("home_")
            }
        })
        #expect(!h.cluster("stack", "ls").out.contains("home"))
        #expect(h.cluster("service", "ls", "-q").out.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        #expect(r.stdout.contains("Removing secret home_kvpass") && r.stdout.contains("Removing config home_site"), "\(r.stdout)")
        #expect(h.cluster("secret", "ls", "-q").out.isEmpty && h.cluster("config", "ls", "-q").out.isEmpty, "the stack's secret and config go with it")
        #expect(r.stdout.contains("Removing network home_default") && h.json("network", "ls").map { $0["name"] as? String ?? "" } == ["cluster"],
                "\(r.stdout)")
        #expect(h.cluster("stack", "rm", "home").status != 0, "nothing left to remove")
    }

    /// Two services of a stack on its default network, on two nodes, reach
    /// each other by their short names; another stack's service does not
    /// resolve them. `stack rm` removes the stack's network.
    @Test func aStacksServicesFindEachOtherOnItsDefaultNetwork() throws {
        func stack(_ name: String, _ services: String) -> Output {
            let file = h.base + "/\(name).yml"
            h.write(file, "version: \"3.8\"\nservices:\n" + services)
            return h.cluster(["stack", "deploy", "--resolve-image", "never", "-c", file, name])
        }
        let serve = #"["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]"#
        var r = stack("app", """
              front:
                image: busybox:test
                command: \(serve)
                stop_grace_period: 1s
                deploy: {placement: {constraints: ["node.name==node1"]}}
              back:
                image: busybox:test
                command: \(serve)
                hostname: back-task
                stop_grace_period: 1s
                deploy: {placement: {constraints: ["node.name==node2"]}}
            """)
        #expect(r.status == 0 && r.stdout.contains("Creating network app_default"), "\(r.stdout) \(r.stderr)")
        r = stack("lab", """
              probe:
                image: busybox:test
                command: ["sleep", "3600"]
                stop_grace_period: 1s
                deploy: {placement: {constraints: ["node.name==node1"]}}
            """)
        #expect(r.status == 0 && r.stdout.contains("Creating network lab_default"), "\(r.stdout) \(r.stderr)")
        #expect(h.eventually(60) { self.h.runningCount("app_front") == [1, 0, 0] && self.h.runningCount("app_back") == [0, 1, 0]
                && self.h.runningCount("lab_probe") == [1, 0, 0] },
                "\(h.runningCount("app_front")) \(h.runningCount("app_back")) \(h.runningCount("lab_probe")) \(h.tasks("app_back", all: true))")
        let inspected = try? JSONSerialization.jsonObject(with: Data(h.cluster("network", "inspect", "app_default").stdout.utf8)) as? [String: Any]
        let net = try #require(inspected?["id"] as? String)
        let backAddress = try #require((h.tasks("app_back").first?["networkAddresses"] as? [String: String])?[net], "\(h.tasks("app_back"))")
        let front = try #require(h.running("app_front")[0].first)
        // "back" is the other node's task on the stack's network, and answers there.
        #expect(h.eventually(20) {
            self.h.onNode(self.h.nodes[0], ["exec", front, "nslookup", "back"]).stdout.contains("Address: \(backAddress)")
        }, "\(h.onNode(h.nodes[0], ["exec", front, "sh", "-c", "cat /etc/resolv.conf; nslookup back"]).out)")
        // (busybox's nc to the address nslookup gave: its static wget faults on getaddrinfo; the body is the last line.)
        let page = h.onNode(h.nodes[0], ["exec", front, "sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \(backAddress) 8080"]).stdout
        #expect(page.hasSuffix("back-task\n"), "\(page)")
        // Another stack's task, on the same node: neither name resolves, the address is not reached.
        let probe = try #require(h.running("lab_probe")[0].first)
        let labInspected = try? JSONSerialization.jsonObject(with: Data(h.cluster("network", "inspect", "lab_default").stdout.utf8)) as? [String: Any]
        let labNet = try #require(labInspected?["id"] as? String)
        let probeAddress = try #require((h.tasks("lab_probe").first?["networkAddresses"] as? [String: String])?[labNet], "\(h.tasks("lab_probe"))")
        #expect(h.eventually(20) { self.h.onNode(self.h.nodes[0], ["exec", probe, "nslookup", "probe"]).stdout.contains("Address: \(probeAddress)") },
                "the probe's own stack resolves")
        for name in ["back", "front"] {
            #expect(h.onNode(h.nodes[0], ["exec", probe, "nslookup", name]).status != 0, "\(name) resolves from stack lab")
        }
        #expect(!h.onNode(h.nodes[0], ["exec", probe, "sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 \(backAddress) 8080"]).stdout
                    .contains("back-task"))

        // Removed: the services, then the stack's network; the other stack keeps its own.
        r = h.cluster("stack", "rm", "app")
        #expect(r.status == 0 && r.stdout.contains("Removing network app_default"), "\(r.stdout) \(r.stderr)")
        let names = h.json("network", "ls").map { $0["name"] as? String ?? "" }
        #expect(!names.contains("app_default") && names.contains("lab_default"), "\(names)")
        #expect(h.cluster("stack", "rm", "lab").status == 0)
        #expect(h.json("network", "ls").map { $0["name"] as? String ?? "" } == ["cluster"])
    }

    @Test func aDeviceServiceLandsOnlyWhereTheDeviceIs() throws {
        #expect(h.json("node", "inspect", "node2").first?["devices"] as? [String] == [], "nothing asked, nothing offered")
        let r = h.cluster("service", "create", "--no-resolve-image", "--name", "sensor", "--replicas", "2", "--stop-grace-period", "1s",
                          "--device", "\(ClusterStackTests.device):/dev/i2c-7:rw", "busybox:test", "sh", "-c", "test -c /dev/i2c-7 && exec sleep 3600")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(h.eventually(30) { self.h.runningCount("sensor") == [0, 2, 0] }, "\(h.runningCount("sensor"))")
        #expect(h.json("node", "inspect", "node2").first?["devices"] as? [String] == [ClusterStackTests.device], "asked for, and there")
        #expect(h.json("node", "inspect", "node1").first?["devices"] as? [String] == [], "refused by deny_devices")
        let id = try #require(h.running("sensor")[1].first)
        #expect(h.onNode(h.nodes[1], ["exec", id, "ls", "-l", "/dev/i2c-7"]).stdout.hasPrefix("c"))
        // A regular file is no device: asked about, reported by none.
        let f = h.cluster("service", "create", "--no-resolve-image", "--name", "spi", "--device", ClusterStackTests.notADevice, "busybox:test", "sleep", "60")
        #expect(f.status == 0, "\(f.stderr)")
        #expect(h.eventually(15) { self.h.cluster("service", "ps", "--no-trunc", "spi").out.contains("device \(ClusterStackTests.notADevice) missing on 3 nodes") },
                "\(h.cluster("service", "ps", "--no-trunc", "spi").out)")
        h.cluster("service", "rm", "sensor", "spi")
        #expect(h.eventually(30) { self.h.runningCount("sensor").reduce(0, +) == 0 })
        #expect(h.eventually(10) { self.h.json("node", "inspect", "node2").first?["devices"] as? [String] == [] }, "no longer asked about")
    }
}
