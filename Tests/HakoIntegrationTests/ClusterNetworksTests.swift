#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Cluster networks on the nodes (Swarm's overlay networks), on two nodes of
/// the harness: services on one network find each other by name and alias
/// and reach each other across the nodes; a service on another network
/// neither resolves nor reaches them, on the same node or across; a service
/// on two networks reaches both; the networks are held apart on one node too;
/// once the services and networks are removed the nodes hold nothing of
/// them. Traffic stays inside the harness's namespaces.
@Suite(.needsRoot, .serialized)
final class ClusterNetworksTests {
    let h = ClusterHarness("cw", nodes: 2)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    /// An httpd on 8080 answering "I am NAME".
    static func serve(_ name: String) -> String {
        "mkdir -p /tmp/www && echo 'I am \(name)' > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
    }

    func create(_ args: [String]) -> Bool {
        let r = h.cluster(["service", "create", "--no-resolve-image", "--stop-timeout", "1", "--wait", "--timeout", "60s"] + args, timeout: 90)
        #expect(r.status == 0, "\(args): \(r.stderr)")
        return r.status == 0
    }

    func networkID(_ name: String) -> String? {
        let r = h.cluster("network", "inspect", name)
        return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["id"] as? String
    }

    /// The running tasks of a service: (node index, container id, its addresses by network id).
    func placed(_ service: String) -> [(node: Int, container: String, addresses: [String: String])] {
        let running = h.running(service)
        return h.tasks(service).compactMap { t in
            guard t["state"] as? String == "running", let c = t["containerID"] as? String,
                  let node = running.firstIndex(where: { $0.contains(c) }) else { return nil }
            return (node, c, t["networkAddresses"] as? [String: String] ?? [:])
        }
    }

    func exec(_ node: Int, _ container: String, _ argv: [String], timeout: Double = 20) -> Output {
        h.onNode(h.nodes[node], ["exec", container] + argv, timeout: timeout)
    }

    /// `name` resolves to `ip` from the container (the node's responder), within a few seconds.
    func resolves(_ node: Int, _ container: String, _ name: String, to ip: String) -> Bool {
        h.eventually(15) { self.exec(node, container, ["nslookup", name]).stdout.contains("Address: \(ip)") }
    }

    /// `name` does not resolve from the container (asked twice, a second apart: not a name still on its way).
    func doesNotResolve(_ node: Int, _ container: String, _ name: String) -> String? {
        for _ in 0..<2 {
            let r = exec(node, container, ["nslookup", name])
            if r.status == 0 && r.stdout.contains("Name:") { return r.stdout }
            usleep(500_000)
        }
        return nil
    }

    func reaches(_ node: Int, _ container: String, _ ip: String) -> Bool {
        exec(node, container, ["ping", "-c", "1", "-W", "2", ip]).status == 0
    }

    /// The page of `name` on 8080, the name resolved by the container's nslookup (the
    /// static busybox's getaddrinfo cannot), then fetched over TCP.
    func fetch(_ node: Int, _ container: String, _ name: String) -> String {
        let answer = exec(node, container, ["nslookup", name]).stdout
        // The answer's addresses follow its "Name:" line (the server's own "Address:" comes first).
        guard let at = answer.range(of: "Name:") else { return "" }
        guard let ip = answer[at.upperBound...].split(separator: "\n").first(where: { $0.hasPrefix("Address") })?
            .split(separator: " ").last.map(String.init) else { return "" }
        // busybox's nc (its static wget faults on getaddrinfo): the body is the last line.
        let r = exec(node, container, ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \(ip) 8080"])
        let body = r.stdout.split(whereSeparator: \.isNewline).last.map { String($0).trimmed } ?? ""
        return body.hasPrefix("I am ") ? body : "\(ip): \(r.status) \(r.stdout.trimmed) \(r.stderr.trimmed)"
    }

    /// Whether `name`'s page from the container says `page`, within a few seconds (the last answer otherwise).
    func serves(_ node: Int, _ container: String, _ name: String, _ page: String) -> String? {
        var got = ""
        return h.eventually(10) { got = self.fetch(node, container, name); return got == page } ? nil : got
    }

    /// What a node holds of the cluster networks: links, engine networks, overlay rules and routes.
    func leftovers(_ n: ClusterHarness.Node) -> [String] {
        var out: [String] = []
        let links = h.inNode(n, ["/usr/sbin/ip", "-o", "link", "show"]).stdout
        for l in links.split(separator: "\n") where l.contains("hako.vx") && !l.contains("hako.vx4096") || l.contains("hako.br") {
            out.append(String(l))
        }
        let routes = h.inNode(n, ["/usr/sbin/ip", "-4", "route", "show"]).stdout
        out += routes.split(separator: "\n").filter { $0.hasPrefix("10.96.") }.map { "route \($0)" }
        let nets = h.onNode(n, ["network", "ls", "--format", "{{.Name}}"]).stdout
        out += nets.split(separator: "\n").filter { $0.hasPrefix("hako-cluster-") }.map { "network \($0)" }
        let overlay = h.inNode(n, ["/usr/sbin/nft", "list", "table", "ip", "hako-overlay"]).stdout
        out += overlay.split(separator: "\n").filter { $0.contains("hako.br") || $0.contains("hako.vx409") && !$0.contains("hako.vx4096") }
            .map { "overlay rule \($0.trimmed)" }
        let engine = h.inNode(n, ["/usr/sbin/nft", "list", "table", "ip", "hako"]).stdout
        out += engine.split(separator: "\n").filter { $0.contains("hako.br") || $0.contains("10.96.") }.map { "engine rule \($0.trimmed)" }
        return out
    }

    @Test func networksResolveReachAndStayApart() {
        for n in ["front", "back", "other"] { #expect(h.cluster("network", "create", n).status == 0) }
        guard let front = networkID("front"), let back = networkID("back"), let other = networkID("other") else {
            Issue.record("no network ids"); h.failed = true; return
        }
        guard create(["--name", "api", "--network", "name=front,alias=gateway", "--constraint", "node.name==node1", "busybox:test", "sh", "-c", Self.serve("api")]),
              create(["--name", "db", "--network", "front", "--network", "name=back,alias=store", "--constraint", "node.name==node2",
                      "busybox:test", "sh", "-c", Self.serve("db")]),
              create(["--name", "cache", "--network", "back", "--constraint", "node.name==node1", "busybox:test", "sh", "-c", Self.serve("cache")]),
              // On every node: beside api on node1, beside db on node2.
              create(["--name", "lone", "--mode", "global", "--network", "other", "busybox:test", "sh", "-c", Self.serve("lone")]) else {
            h.failed = true; return
        }
        guard let api = placed("api").first, let db = placed("db").first, let cache = placed("cache").first else {
            Issue.record("tasks: \(h.tasks("api")) \(h.tasks("db")) \(h.tasks("cache"))"); h.failed = true; return
        }
        let lone = placed("lone")
        #expect(api.node == 0 && db.node == 1 && cache.node == 0 && Set(lone.map(\.node)) == [0, 1], "\(api) \(db) \(cache) \(lone)")

        // Each task reports its address on each of its networks, inside the network's CIDR (service ps).
        guard let apiFront = api.addresses[front], let dbFront = db.addresses[front], let dbBack = db.addresses[back],
              let cacheBack = cache.addresses[back] else {
            Issue.record("addresses: api \(api.addresses), db \(db.addresses), cache \(cache.addresses)"); h.failed = true; return
        }
        #expect(db.addresses.count == 2 && api.addresses.count == 1 && lone.allSatisfy { $0.addresses.keys.sorted() == [other] })
        #expect(apiFront.hasPrefix("10.96.") && dbBack.hasPrefix("10.96.") && apiFront != dbFront)
        let addressOf = h.tasks("db").first?["address"] as? String
        #expect(addressOf == nil, "db is not on the cluster network: \(String(describing: addressOf))")
        // One interface per network inside the container, in the service's order.
        let interfaces = exec(1, db.container, ["ip", "-o", "-4", "addr", "show"]).stdout
        #expect(interfaces.contains("eth0") && interfaces.contains("inet \(dbFront)/") && interfaces.contains("eth1") && interfaces.contains("inet \(dbBack)/"),
                "\(interfaces)")
        #expect(!interfaces.contains("eth2"), "\(interfaces)")

        // The same network, across the nodes: by name, by alias, by replica name; ping and TCP.
        #expect(resolves(0, api.container, "db", to: dbFront), "api → db on front")
        #expect(resolves(0, api.container, "db.1", to: dbFront), "api → db.1 on front")
        #expect(resolves(1, db.container, "gateway", to: apiFront), "db → api's alias on front")
        #expect(resolves(1, db.container, "api", to: apiFront), "db → api")
        #expect(reaches(0, api.container, dbFront), "api (node1) pings db (node2) on front")
        #expect(serves(0, api.container, "db", "I am db") == nil, "api → http://db:8080/ across the nodes")
        #expect(serves(1, db.container, "gateway", "I am api") == nil, "db → http://gateway:8080/ across the nodes")

        // A service on two networks reaches both: front's api (node1) and back's cache (node1), by name and alias.
        #expect(resolves(1, db.container, "cache", to: cacheBack), "db → cache on back")
        #expect(serves(1, db.container, "cache", "I am cache") == nil, "db → cache across the nodes on back")
        #expect(resolves(0, cache.container, "store", to: dbBack), "cache → db's alias on back")
        #expect(serves(0, cache.container, "store", "I am db") == nil, "cache → db on back")

        // Networks apart on one node: api (front) and cache (back) both on node1 neither resolve nor reach each other.
        #expect(doesNotResolve(0, api.container, "cache") == nil, "api resolved back's cache")
        #expect(doesNotResolve(0, cache.container, "api") == nil && doesNotResolve(0, cache.container, "gateway") == nil, "cache resolved front's api")
        #expect(!reaches(0, api.container, cacheBack), "api (front) reached cache (back) on the same node")
        #expect(!reaches(0, cache.container, apiFront), "cache (back) reached api (front) on the same node")
        // Across nodes too: api (front, node1) cannot reach db's back address on node2.
        #expect(!reaches(0, api.container, dbBack), "api (front) reached db's back address across the nodes")

        // Another network: neither names nor traffic, on the same node or across (lone on each node).
        for l in lone {
            for name in ["api", "db", "gateway", "store", "cache", "db.1"] {
                #expect(doesNotResolve(l.node, l.container, name) == nil, "lone on node\(l.node + 1) resolved \(name)")
            }
            for ip in [apiFront, dbFront, dbBack, cacheBack] {
                #expect(!reaches(l.node, l.container, ip), "lone on node\(l.node + 1) reached \(ip)")
            }
            let tcp = exec(l.node, l.container, ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 \(dbFront) 8080"])
            #expect(!tcp.stdout.contains("I am"), "lone on node\(l.node + 1) fetched db's page: \(tcp.stdout)")
            #expect(resolves(l.node, l.container, "lone", to: l.addresses[other] ?? "?"), "lone resolves its own service")
        }
        // And the other way: none of them reaches a lone task.
        for l in lone {
            guard let ip = l.addresses[other] else { continue }
            #expect(!reaches(0, api.container, ip) && !reaches(1, db.container, ip), "lone \(ip) reached from front/back")
            #expect(doesNotResolve(1, db.container, "lone") == nil)
        }
        // The isolation is the overlay table's forward chain (and the engine's, bridge to bridge).
        let rules = h.inNode(h.nodes[0], ["/usr/sbin/nft", "list", "chain", "ip", "hako-overlay", "forward"]).stdout
        #expect(rules.contains("iifname \"hako.br4097\" oifname \"hako.vx4098\"") && rules.contains("ct status dnat accept"), "\(rules)")
        // The cluster network still works as before for a service that names none.
        guard create(["--name", "plain", "--replicas", "2", "--max-replicas-per-node", "1", "busybox:test", "sh", "-c", Self.serve("plain")]) else {
            h.failed = true; return
        }
        let plain = placed("plain")
        if let p = plain.first(where: { $0.node == 0 }), let q = h.tasks("plain").compactMap({ $0["address"] as? String }).first(where: { !$0.isEmpty }) {
            #expect(p.addresses.isEmpty)
            #expect(resolves(0, p.container, "plain", to: q) || resolves(0, p.container, "plain.1", to: q) || resolves(0, p.container, "plain.2", to: q))
            #expect(doesNotResolve(0, p.container, "db") == nil, "the cluster network does not hold front's names")
        }

        // A service on a network that publishes a port: also on the cluster network (its first interface),
        // where the routing mesh reaches it from every node; found on its network by name.
        guard create(["--name", "web", "--network", "front", "--ingress", "9092:8080", "--constraint", "node.name==node2",
                      "busybox:test", "sh", "-c", Self.serve("web")]) else { h.failed = true; return }
        if let web = placed("web").first, let webFront = web.addresses[front] {
            let meshAddress = h.tasks("web").first?["address"] as? String
            #expect(meshAddress?.hasPrefix("10.88.") == true, "web's cluster address: \(String(describing: meshAddress))")
            let eth0 = exec(1, web.container, ["ip", "-o", "-4", "addr", "show", "eth0"]).stdout
            #expect(meshAddress.map { eth0.contains("inet \($0)/") } == true, "eth0 is the cluster network's: \(eth0)")
            var body = ""
            let meshed = h.eventually(15) {
                body = self.h.underlay(["/usr/bin/curl", "-sS", "--max-time", "3", "http://\(self.h.nodes[0].address):9092/"]).stdout.trimmed
                return body == "I am web"
            }
            #expect(meshed, "node1:9092 through the mesh to node2's task: \(body)")
            #expect(resolves(0, api.container, "web", to: webFront), "api → web on front")
            #expect(serves(0, api.container, "web", "I am web") == nil, "api → web over front")
        } else {
            Issue.record("web: \(h.tasks("web"))")
        }

        // Everything removed: nothing of the networks left on either node.
        let services = ["api", "db", "cache", "lone", "plain", "web"]
        for s in services { #expect(h.cluster("service", "rm", s).status == 0) }
        #expect(h.eventually(30) { services.allSatisfy { self.h.runningCount($0).reduce(0, +) == 0 } })
        #expect(h.eventually(30) { self.h.cluster("network", "rm", "front", "back", "other").status == 0 }, "network rm")
        for n in h.nodes {
            var left: [String] = []
            let clean = h.eventually(20) { left = self.leftovers(n); return left.isEmpty }
            #expect(clean, "\(n.name) still holds: \(left)")
        }
    }
}
