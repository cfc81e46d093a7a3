@testable import HakoCluster
import HakoCompose
import HakoSystem
import Testing

/// `stack deploy` and `stack rm` (`StackDeployment`) against a coordinator
/// driven in-process, with simulated agents: the stack's networks are made
/// before its services, left alone when unchanged, removed after the
/// services that used them, never when external, and a failed deploy takes
/// back what it made.
@Suite struct StackDeploymentTests {
    /// The admin requests of `hako cluster`, answered by the fixture's core.
    struct CoreChannel: AdminChannel {
        let f: CoreFixture
        func call<B: Encodable, R: Decodable>(_ type: String, _ body: B, as: R.Type) throws -> R { try f.admin(type, body, as: R.self) }
    }

    /// The stack of a Compose file in `dir` (its secrets' files are read from there).
    static func stack(_ text: String, dir: TempDir) throws -> (Stack, [ServiceSpec]) {
        let loader = ComposeLoader(environment: [:], projectDirectory: dir.path, readFile: { _ in nil })
        let s = try Stack.translate(try loader.load([("compose.yml", text)]).project, name: "home")
        return (s, try StackSpecs.specs(s).specs)
    }

    static func project(secret: String) throws -> TempDir {
        let dir = TempDir("stack")
        try FS.writeFile(dir.path + "/pw", Array(secret.utf8))
        return dir
    }

    static let v1 = """
        services:
          web:
            image: web:1
            networks:
              front: {aliases: [www]}
              shared:
          kv:
            image: kv:1
        networks:
          front: {attachable: true}
          shared: {external: true}
        secrets:
          pw: {file: ./pw}
        """

    func networks(_ f: CoreFixture) throws -> [String: NetworkView] {
        var out: [String: NetworkView] = [:]
        for n in try f.admin(MessageType.networkList, EmptyBody(), as: NetworkList.self).items { out[n.name] = n }
        return out
    }

    func services(_ f: CoreFixture) throws -> [String: ServiceView] {
        var out: [String: ServiceView] = [:]
        for s in try f.admin(MessageType.serviceList, EmptyBody(), as: ServiceList.self).services { out[s.name] = s }
        return out
    }

    @Test func deployMakesTheNetworksAndStackRmRemovesThemButNeverAnExternalOne() throws {
        let f = try CoreFixture()
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        let shared = try f.admin(MessageType.networkCreate, NetworkCreateRequest(name: "shared"), as: NetworkView.self)
        var said: [String] = []
        var warned: [String] = []
        var pauses = 0
        let d = StackDeployment(channel: CoreChannel(f: f), say: { said.append($0) }, warn: { warned.append($0) },
                                pause: { s in pauses += 1; f.clock.advance(s); try? settle(f, nodes) })
        let files = try StackDeploymentTests.project(secret: "s3cret")
        let (s1, specs1) = try StackDeploymentTests.stack(StackDeploymentTests.v1, dir: files)
        _ = try d.deploy(s1, specs: specs1, prune: false)
        try settle(f, nodes)
        // Networks and the secret first, then the services.
        #expect(said == ["Creating network home_default", "Creating network home_front", "Creating secret home_pw",
                         "Creating service home_kv", "Creating service home_web"])
        var nets = try networks(f)
        let front = try #require(nets["home_front"]), dflt = try #require(nets["home_default"])
        #expect(front.labels == [Stack.namespaceLabel: "home"] && front.attachable)
        #expect(dflt.labels == [Stack.namespaceLabel: "home"] && dflt.services == ["home_kv"])
        #expect(nets["shared"]?.services == ["home_web"] && nets["shared"]?.labels == [:])
        var svcs = try services(f)
        let web = try #require(svcs["home_web"])
        #expect(web.spec.networks == [NetworkAttachment(target: "home_front", id: front.id, aliases: ["web", "www"]),
                                      NetworkAttachment(target: "shared", id: shared.id, aliases: ["web"])])
        #expect(svcs["home_kv"]?.spec.networks == [NetworkAttachment(target: "home_default", id: dflt.id, aliases: ["kv"])])
        #expect(nodes.map { $0.live.count }.reduce(0, +) == 2)

        // Deployed again as it is: nothing is made, nothing changes.
        said = []
        let (again, specsAgain) = try StackDeploymentTests.stack(StackDeploymentTests.v1, dir: files)
        #expect(try d.deploy(again, specs: specsAgain, prune: false).isEmpty)
        #expect(said.isEmpty && warned.isEmpty)
        #expect(try networks(f)["home_front"]?.id == front.id)

        // web leaves `front`: without --prune the network stays (a warning); with it, it goes after web is updated.
        let v2 = StackDeploymentTests.v1.replacing("      front: {aliases: [www]}\n", with: "")
        let (s2, specs2) = try StackDeploymentTests.stack(v2, dir: files)
        said = []
        _ = try d.deploy(s2, specs: specs2, prune: false)
        #expect(said == ["Updating service home_web (networks)"])
        #expect(warned == ["network home_front is no longer in the files; kept (--prune removes it)"])
        #expect(try networks(f)["home_front"] != nil)
        said = []
        pauses = 0
        _ = try d.deploy(s2, specs: specs2, prune: true)
        #expect(said == ["Removing network home_front"])
        nets = try networks(f)
        #expect(nets["home_front"] == nil && nets["home_default"] != nil && nets["shared"] != nil)
        try settle(f, nodes)

        // stack rm: the services, then the stack's networks and secret; `shared` stays.
        said = []
        #expect(try d.remove(stack: "home"))
        #expect(said == ["Removing service home_kv", "Removing service home_web", "Removing network home_default", "Removing secret home_pw"])
        #expect(pauses > 0, "the tasks were still on the network when their services were removed")
        nets = try networks(f)
        #expect(Set(nets.keys) == ["cluster", "shared"])
        svcs = try services(f)
        #expect(svcs.isEmpty)
        #expect(try !d.remove(stack: "home"))
    }

    /// A deploy that fails half-way (the second network's subnet is refused)
    /// leaves nothing it made: the first network and the secret are removed.
    @Test func aFailedDeployLeavesNothingItMade() throws {
        let f = try CoreFixture()
        let files = try StackDeploymentTests.project(secret: "x")
        let nodes = try (1...2).map { try SimNode(f, name: "n\($0)") }
        var said: [String] = []
        let d = StackDeployment(channel: CoreChannel(f: f), say: { said.append($0) }, warn: { Issue.record("warning \($0)") },
                                pause: { s in f.clock.advance(s); try? settle(f, nodes) })
        let (s, specs) = try StackDeploymentTests.stack("""
            services:
              web: {image: web:1, networks: [a, b], secrets: [pw]}
            networks:
              a: {}
              b: {ipam: {config: [{subnet: 10.88.4.0/24}]}}
            secrets:
              pw: {file: ./pw}
            """, dir: files)
        #expect(throws: ClusterError.self) { try d.deploy(s, specs: specs, prune: false) }
        #expect(said == ["Creating network home_a", "Creating network home_b", "Removing network home_a (the deploy failed)"])
        #expect(Set(try networks(f).keys) == ["cluster"])
        #expect(try services(f).isEmpty)
        #expect(try f.admin(MessageType.secretList, SecretListRequest(kind: .secret), as: SecretList.self).items.isEmpty)

        // A service refused by the coordinator after the networks and the secret were made: all of them go.
        said = []
        var (s2, specs2) = try StackDeploymentTests.stack("""
            services:
              a: {image: x}
              b: {image: x, secrets: [pw]}
            secrets:
              pw: {file: ./pw}
            """, dir: files)
        specs2[1].secrets[0].source = "missing"
        s2.name = "home"
        #expect(throws: ClusterError.self) { try d.deploy(s2, specs: specs2, prune: false) }
        #expect(said == ["Creating network home_default", "Creating secret home_pw", "Creating service home_a", "Creating service home_b",
                         "Removing service home_a (the deploy failed)", "Removing network home_default (the deploy failed)",
                         "Removing secret home_pw (the deploy failed)"])
        #expect(Set(try networks(f).keys) == ["cluster"])
        #expect(try services(f).isEmpty)
        #expect(try f.admin(MessageType.secretList, SecretListRequest(kind: .secret), as: SecretList.self).items.isEmpty)
    }

    /// A secret's or config's data cannot change (Swarm's rule): a deploy
    /// whose file changed is refused before anything changes, whatever its
    /// size — a file of the same size too, which only the coordinator can
    /// tell (`secret.compare`: it never sends the stored data back); an
    /// unchanged file is left alone.
    @Test func aChangedSecretOrConfigFileIsRefusedEvenOfTheSameSize() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "n1")]
        var said: [String] = []
        let d = StackDeployment(channel: CoreChannel(f: f), say: { said.append($0) }, warn: { Issue.record("warning \($0)") },
                                pause: { s in f.clock.advance(s); try? settle(f, nodes) })
        let dir = try StackDeploymentTests.project(secret: "s3cret")
        let conf = Array("level=info\n".utf8)
        try FS.writeFile(dir.path + "/conf", conf)
        func deploy(image: String = "web:1") throws -> [String] {
            let (s, specs) = try StackDeploymentTests.stack("""
                services:
                  web: {image: \(image), secrets: [pw], configs: [conf]}
                secrets:
                  pw: {file: ./pw}
                configs:
                  conf: {file: ./conf}
                """, dir: dir)
            return try d.deploy(s, specs: specs, prune: false)
        }
        _ = try deploy()
        try settle(f, nodes)
        #expect(said == ["Creating network home_default", "Creating secret home_pw", "Creating config home_conf", "Creating service home_web"])
        // Everything a deploy could change: the services (id, version, image), the secrets and configs (id, update time), the networks.
        func state() throws -> [String] {
            var out = try services(f).values.map { "service \($0.name) \($0.id) v\($0.version) \($0.spec.image)" }
            for kind in SecretKind.allCases {
                out += try f.admin(MessageType.secretList, SecretListRequest(kind: kind), as: SecretList.self).items
                    .map { "\(kind.rawValue) \($0.name) \($0.id) \($0.updated) \($0.size)" }
            }
            out += try networks(f).values.map { "network \($0.name) \($0.id)" }
            return out.sorted()
        }
        func stored(_ name: String, _ kind: SecretKind) throws -> [UInt8] {
            try f.core.state.findSecret(name, kind: kind).open(with: try #require(f.core.secretBox))
        }
        let before = try state()
        let tasks = Set(nodes[0].live)

        // Unchanged: nothing to do.
        said = []
        #expect(try deploy().isEmpty)
        #expect(try said.isEmpty && state() == before)

        func refusal(_ kind: SecretKind, _ name: String) -> ClusterError {
            .conflict("\(kind.rawValue) \(name) exists with other data: a \(kind.rawValue)'s data cannot change; rotate it under a new name (e.g. `name: \(name)_v2` under its key in the Compose file: the services that use it roll onto the new one), or remove the stack first")
        }
        // The secret's file changed, same size (and the image too): refused, nothing changed.
        try FS.writeFile(dir.path + "/pw", Array("s3creT".utf8))
        #expect(throws: refusal(.secret, "home_pw")) { try deploy(image: "web:2") }
        #expect(try said.isEmpty && state() == before)
        #expect(try stored("home_pw", .secret) == Array("s3cret".utf8))
        // Another size: refused the same.
        try FS.writeFile(dir.path + "/pw", Array("a longer secret".utf8))
        #expect(throws: refusal(.secret, "home_pw")) { try deploy(image: "web:2") }
        #expect(try said.isEmpty && state() == before)

        // The config's file changed, same size: refused, nothing changed.
        try FS.writeFile(dir.path + "/pw", Array("s3cret".utf8))
        try FS.writeFile(dir.path + "/conf", Array("level=dbug\n".utf8))
        #expect(throws: refusal(.config, "home_conf")) { try deploy(image: "web:2") }
        #expect(try said.isEmpty && state() == before)
        #expect(try stored("home_conf", .config) == conf)
        try settle(f, nodes)
        #expect(Set(nodes[0].live) == tasks && !tasks.isEmpty, "the task kept running")

        // Both as they were: the image's change deploys, the secret and the config are left alone.
        try FS.writeFile(dir.path + "/conf", conf)
        #expect(try deploy(image: "web:2").count == 1)
        #expect(said == ["Updating service home_web (image, serviceLabels.com.docker.stack.image)"])
        #expect(try state().filter { !$0.hasPrefix("service ") } == before.filter { !$0.hasPrefix("service ") })
    }

    /// A network of the stack that a service outside it uses is kept by
    /// `stack rm`, at once and saying why; the rest of the stack goes. The
    /// service is outside the stack by its labels, though its name has the
    /// stack's prefix.
    @Test func stackRmKeepsANetworkAnotherServiceIsOn() throws {
        let f = try CoreFixture()
        let nodes = [try SimNode(f, name: "n1")]
        var pauses = 0
        let d = StackDeployment(channel: CoreChannel(f: f), say: { _ in }, warn: { _ in },
                                pause: { s in pauses += 1; f.clock.advance(s); try? settle(f, nodes) })
        let dir = try StackDeploymentTests.project(secret: "x")
        let (s, specs) = try StackDeploymentTests.stack("services:\n  web: {image: x, networks: [pub]}\nnetworks:\n  pub: {name: pub}\n", dir: dir)
        _ = try d.deploy(s, specs: specs, prune: false)
        var loose = ServiceSpec(name: "home_loose", image: "x")
        loose.networks = [NetworkAttachment(target: "pub")]
        try f.admin(MessageType.serviceCreate, ServiceCreateRequest(spec: loose), as: ServiceView.self)
        try settle(f, nodes)
        #expect(throws: ClusterError.conflict("network pub is in use by service home_loose, which is not part of stack home: kept")) {
            try d.remove(stack: "home")
        }
        #expect(pauses == 0)
        #expect(try networks(f)["pub"] != nil && Set(try services(f).keys) == ["home_loose"])
    }

    /// On a stack's network a service is its name, its short name (an alias)
    /// and its short name in the stack's domain ("kv.home", which the stack's
    /// tasks search), from its tasks' addresses on that network.
    @Test func aStacksServicesAreNamedOnItsNetworks() throws {
        let f = try CoreFixture()
        let node = try SimNode(f, name: "n1", underlay: "10.0.0.1")
        let d = StackDeployment(channel: CoreChannel(f: f), say: { _ in }, warn: { _ in }, pause: { _ in })
        let dir = try StackDeploymentTests.project(secret: "x")
        let (s, specs) = try StackDeploymentTests.stack("services:\n  kv: {image: x}\n  web: {image: x}\n", dir: dir)
        _ = try d.deploy(s, specs: specs, prune: false)
        try settle(f, [node])
        let net = try #require(try networks(f)["home_default"])
        for (i, t) in f.core.state.tasks.values.filter(\.isLive).sorted(by: { $0.serviceName < $1.serviceName }).enumerated() {
            var st = TaskStatus(taskID: t.id, state: .running, containerID: "c-" + t.id)
            st.networkAddresses = [net.id: "10.96.0.\(i + 2)"]
            try node.report([st])
        }
        try settle(f, [node])
        let names = try #require(node.overlays.last?.networks.first { $0.id == net.id }?.names)
        #expect(names == ["home_kv": ["10.96.0.2"], "home_kv.1": ["10.96.0.2"], "kv": ["10.96.0.2"], "kv.home": ["10.96.0.2"],
                          "home_web": ["10.96.0.3"], "home_web.1": ["10.96.0.3"], "web": ["10.96.0.3"], "web.home": ["10.96.0.3"]])
    }
}
