@testable import HakoCluster
import HakoCompose
import HakoImage
import Testing

/// Compose files as cluster services: what `hako cluster stack deploy` sends.
@Suite struct StackSpecsTests {
    func load(_ text: String, stack: String = "home", files: [String: String] = [:]) throws -> (specs: [ServiceSpec], warnings: [String]) {
        let loader = ComposeLoader(environment: ["TAG": "3"], projectDirectory: "/srv/home", readFile: { files[$0] })
        let load = try loader.load([("compose.yml", text)])
        return try StackSpecs.specs(try Stack.translate(load.project, name: stack))
    }

    func spec(_ specs: [ServiceSpec], _ name: String) throws -> ServiceSpec { try #require(specs.first { $0.name == name }) }

    static let home = """
        version: "3.8"
        services:
          kv:
            image: redis:${TAG}
            command: ["redis-server", "--appendonly", "yes"]
            volumes: ["kvdata:/data"]
            healthcheck:
              test: ["CMD", "redis-cli", "ping"]
              interval: 10s
              timeout: 2s
              retries: 5
            deploy:
              placement: {constraints: ["node.labels.disk==ssd"]}
              resources: {limits: {memory: 64M, pids: 100}, reservations: {cpus: "0.25"}}
          web:
            image: nginx:1.25
            hostname: "{{.Service.Name}}-{{.Task.Slot}}"
            ports: ["8080:80", {target: 443, published: 8443, mode: host}]
            environment: {KV: kv, NODE: "{{.Node.Hostname}}"}
            volumes:
              - type: bind
                source: ./html
                target: /usr/share/nginx/html
                read_only: true
              - type: tmpfs
                target: /var/cache/nginx
                tmpfs: {size: 8M}
            labels: {tier: front}
            deploy:
              replicas: 2
              labels: {owner: me}
              restart_policy: {condition: on-failure, delay: 3s, max_attempts: 4}
              update_config: {parallelism: 2}
            stop_grace_period: 1m30s
            read_only: true
            init: true
            cap_add: [NET_ADMIN]
            cap_drop: [MKNOD]
            sysctls: {net.core.somaxconn: 1024}
            dns: [9.9.9.9]
            dns_search: [lan]
          sensor:
            image: sensor:1
            entrypoint: ["/bin/sh", "-c"]
            command: ["read-i2c"]
            devices: ["/dev/i2c-1:/dev/i2c-1:rw"]
            deploy: {mode: global}
        volumes:
          kvdata: {}
        """

    @Test func theHomeStackAsServices() throws {
        let (specs, warnings) = try load(StackSpecsTests.home)
        #expect(specs.map(\.name) == ["home_kv", "home_sensor", "home_web"])
        #expect(warnings.isEmpty, "\(warnings)")

        let kv = try spec(specs, "home_kv")
        #expect(kv.image == "redis:3" && kv.command == ["redis-server", "--appendonly", "yes"])
        #expect(kv.container.mounts == [ServiceMount(type: .volume, source: "home_kvdata", target: "/data")])
        #expect(kv.healthCheck == HealthCheck(test: .exec(["redis-cli", "ping"]), interval: .seconds(10), timeout: .seconds(2), retries: 5))
        #expect(kv.constraints == ["node.labels.disk==ssd"])
        #expect(kv.limits == Resources(cpuMillis: 0, memory: 64 << 20) && kv.reservations == Resources(cpuMillis: 250, memory: 0))
        #expect(kv.container.pidsLimit == 100)
        #expect(kv.serviceLabels == ["com.docker.stack.namespace": "home", "com.docker.stack.image": "redis:3"])
        #expect(kv.stackShortName == "kv")
        #expect(kv.network == ServiceSpec.clusterNetwork && kv.mode == .replicated && kv.replicas == 1)
        // A service naming no network is on the stack's default one, found there by its short name.
        #expect(kv.networks == [NetworkAttachment(target: "home_default", aliases: ["kv"])])
        #expect(!kv.isOnClusterNetwork)

        let web = try spec(specs, "home_web")
        #expect(web.replicas == 2)
        #expect(web.ingress == ["8080:80/tcp"] && web.ports == ["8443:443/tcp"])
        #expect(web.env == ["KV=kv", "NODE={{.Node.Hostname}}"])
        #expect(web.container.hostname == "{{.Service.Name}}-{{.Task.Slot}}")
        var bind = ServiceMount(type: .bind, source: "/srv/home/html", target: "/usr/share/nginx/html", readOnly: true)
        bind.propagation = nil
        var tmpfs = ServiceMount(type: .tmpfs, source: nil, target: "/var/cache/nginx")
        tmpfs.tmpfsSize = 8 << 20
        #expect(web.container.mounts == [bind, tmpfs])
        #expect(web.labels == ["tier": "front", "com.docker.stack.namespace": "home"])
        #expect(web.serviceLabels["owner"] == "me")
        #expect(web.restartCondition == .onFailure && web.restartDelay == 3 && web.restartMaxAttempts == 4)
        #expect(web.update.parallelism == 2 && web.update.order == .stopFirst && web.stopTimeout == 90)
        #expect(web.container.readOnly && web.container.initProcess)
        #expect(web.container.capAdd == ["NET_ADMIN"] && web.container.capDrop == ["MKNOD"])
        #expect(web.container.sysctls == ["net.core.somaxconn": "1024"])
        #expect(web.container.dns == ["9.9.9.9"] && web.container.dnsSearch == ["lan"])

        let sensor = try spec(specs, "home_sensor")
        #expect(sensor.mode == .global)
        #expect(sensor.container.devices == [ServiceDevice(host: "/dev/i2c-1", container: "/dev/i2c-1", permissions: "rw")])
        #expect(sensor.entrypoint == "/bin/sh" && sensor.command == ["-c", "read-i2c"], "the entrypoint's arguments come before the command")
    }

    @Test func healthcheckDisabledAndShellForms() throws {
        let (specs, _) = try load("""
            services:
              a: {image: x, healthcheck: {disable: true}}
              b: {image: x, healthcheck: {test: "curl -f http://localhost/ || exit 1", start_period: 30s}}
              c: {image: x, healthcheck: {test: ["NONE"]}}
            """)
        #expect(try spec(specs, "home_a").healthCheck == HealthCheck(test: .none))
        #expect(try spec(specs, "home_b").healthCheck == HealthCheck(test: .shell("curl -f http://localhost/ || exit 1"), startPeriod: .seconds(30)))
        #expect(try spec(specs, "home_c").healthCheck == HealthCheck(test: .none))
    }

    @Test func secretsAndConfigsBecomeFileReferences() throws {
        let (specs, _) = try load("""
            services:
              db:
                image: x
                secrets: [pw, {source: tls, target: server.key, uid: "70", gid: "70", mode: 0400}]
                configs: [{source: conf, target: /etc/db.conf}, plain]
            secrets:
              pw: {external: true}
              tls: {file: ./tls.key}
            configs:
              conf: {file: ./db.conf}
              plain: {name: shared-plain, file: ./plain}
            """)
        let db = try #require(specs.first)
        #expect(db.secrets == [SecretReference(source: "pw", target: "/run/secrets/pw"),
                               SecretReference(source: "home_tls", target: "/run/secrets/server.key", uid: 70, gid: 70, mode: 0o400)])
        #expect(db.configs == [SecretReference(source: "home_conf", target: "/etc/db.conf"),
                               SecretReference(source: "shared-plain", target: "/plain")])
        #expect(db.secrets.map { $0.path(.secret) } == ["/run/secrets/pw", "/run/secrets/server.key"])
        // Deployed again: the coordinator's bound ids make no difference.
        var held = db
        held.secrets = held.secrets.map { var r = $0; r.id = "sid-" + r.source; return r }
        held.configs = held.configs.map { var r = $0; r.id = "cid-" + r.source; return r }
        #expect(StackPlan(stack: "home", specs: specs, existing: [StackPlan.Existing(id: "x", version: 1, spec: held)], prune: false).entries.map(\.action)
                == [.unchanged(id: "x")])
    }

    @Test func whatTheClusterCannotRunIsRefusedNamingServiceAndKey() throws {
        func refusal(_ text: String) -> String {
            do { _ = try load(text) } catch let e as ClusterError { return e.description } catch { return "\(error)" }
            return ""
        }
        #expect(refusal("""
            services:
              db: {image: x, secrets: [{source: pw, uid: "postgres"}]}
            secrets:
              pw: {external: true}
            """) == "service home_db: secrets: pw: uid and gid must be numbers (postgres, 0)")
        #expect(refusal("""
            services:
              web: {image: x, ports: ["80"]}
            """) == "service home_web: ports: 80/tcp has no published port (the routing mesh needs one)")
        #expect(refusal("""
            services:
              web: {image: x, volumes: ["data:/data"]}
            volumes:
              data: {driver: nfs}
            """) == "volume data: driver nfs: the cluster's volumes are local to each node (driver local)")
        #expect(refusal("""
            services:
              web: {image: x, hostname: "{{.Node.Name}}"}
            """).hasPrefix("service home_web: invalid --hostname template"))
    }

    @Test func restartWindowAndUpdateConfigAreApplied() throws {
        let (specs, warnings) = try load("""
            services:
              web:
                image: x
                deploy:
                  restart_policy: {window: 30s}
                  update_config: {order: start-first}
            """)
        #expect(warnings.isEmpty, "\(warnings)")
        #expect(specs.first?.restartWindow == 30)
        // update_config is applied whole (the cluster's rolling updates are Swarm's).
        #expect(specs.first?.update.order == .startFirst)
    }

    /// Networks in list and map form, with aliases, `name:`, external ones,
    /// the default network; every service has its short name on each.
    @Test func servicesAreOnTheStacksNetworksWithTheirAliases() throws {
        let (specs, warnings) = try load("""
            services:
              web:
                image: x
                ports: ["8080:80"]
                networks: {front: {aliases: [www, web]}, back: }
              api:
                image: x
                networks: [back, shared, default]
              kv:
                image: x
              host:
                image: x
                networks: [hostnet]
            networks:
              front: {attachable: true, labels: {tier: front}}
              back: {name: home-backend, ipam: {config: [{subnet: 10.97.0.0/24}]}}
              shared: {external: true}
              hostnet: {external: true, name: host}
            """)
        #expect(warnings.isEmpty, "\(warnings)")
        let web = try spec(specs, "home_web")
        #expect(web.networks == [NetworkAttachment(target: "home-backend", aliases: ["web"]),
                                 NetworkAttachment(target: "home_front", aliases: ["web", "www"])])
        // It publishes a port: also on the cluster network, as Swarm's ingress.
        #expect(web.isOnClusterNetwork)
        let api = try spec(specs, "home_api")
        #expect(api.networks.map(\.target) == ["home-backend", "home_default", "shared"])
        #expect(api.networks.allSatisfy { $0.aliases == ["api"] } && !api.isOnClusterNetwork)
        #expect(try spec(specs, "home_kv").networks == [NetworkAttachment(target: "home_default", aliases: ["kv"])])
        // Docker's external network `host`: host networking.
        let host = try spec(specs, "home_host")
        #expect(host.network == "host" && host.networks.isEmpty)

        // A built-in network only alone; a reserved name is not made.
        func refusal(_ text: String) -> String {
            do { _ = try load(text) } catch let e as ClusterError { return e.description } catch { return "\(error)" }
            return ""
        }
        #expect(refusal("""
            services:
              s: {image: x, networks: [h, back]}
            networks:
              h: {external: true, name: host}
              back: {}
            """) == "service home_s: networks: host is a built-in network: a service is on it alone")
        #expect(refusal("""
            services:
              s: {image: x, networks: [back]}
            networks:
              back: {name: ingress}
            """) == "network back: network name ingress is reserved (a built-in network)")
    }

    static func network(_ name: String, stack: String? = "home", subnet: String = "10.96.0.0/20", attachable: Bool = false,
                        labels: [String: String] = [:]) -> NetworkView {
        var l = labels
        if let stack { l[Stack.namespaceLabel] = stack }
        return NetworkView(id: "id-" + name, name: name, driver: "overlay", scope: "swarm", subnet: subnet, nodePrefix: 26, vni: 4097,
                           attachable: attachable, builtIn: false, labels: l, created: 0, services: [])
    }

    /// A deploy's networks: made when new, left alone when unchanged, external
    /// ones checked, those the files no longer name removed with --prune.
    @Test func aDeployIsADiffOfTheStacksNetworks() throws {
        let loader = ComposeLoader(environment: [:], projectDirectory: "/srv/home", readFile: { _ in nil })
        func stack(_ text: String) throws -> Stack { try Stack.translate(try loader.load([("compose.yml", text)]).project, name: "home") }
        let v1 = try stack("""
            services:
              web: {image: x, networks: [front, ext]}
              kv: {image: x}
            networks:
              front: {attachable: true, ipam: {config: [{subnet: 10.97.0.0/24}]}}
              ext: {external: true}
            """)
        let cluster = NetworkView(id: "cluster", name: "cluster", driver: "overlay", scope: "swarm", subnet: "10.88.0.0/16", nodePrefix: 24,
                                  vni: 4096, attachable: false, builtIn: true, labels: [:], created: 0, services: [])
        let ext = StackSpecsTests.network("ext", stack: nil)
        let fresh = try StackNetworkPlan(stack: v1, existing: [cluster, ext], prune: false)
        #expect(fresh.entries.map(\.network) == ["ext", "home_default", "home_front"])
        #expect(fresh.entries[0].action == .external)
        guard case .create(let d) = fresh.entries[1].action, case .create(let f) = fresh.entries[2].action else { Issue.record("\(fresh)"); return }
        #expect(d.labels == [Stack.namespaceLabel: "home"] && d.subnet == nil && !d.attachable)
        #expect(f.subnet == "10.97.0.0/24" && f.attachable)

        // Deployed again: the same networks are left alone; another stack's and loose ones are not the stack's.
        let held = [cluster, ext, StackSpecsTests.network("home_default"),
                    StackSpecsTests.network("home_front", subnet: "10.97.0.0/24", attachable: true),
                    StackSpecsTests.network("home_old"), StackSpecsTests.network("lab_default", stack: "lab"),
                    StackSpecsTests.network("loose", stack: nil)]
        let again = try StackNetworkPlan(stack: v1, existing: held, prune: false)
        #expect(again.entries.map(\.action) == [.external, .unchanged(id: "id-home_default"), .unchanged(id: "id-home_front"), .keep(id: "id-home_old")])
        let pruned = try StackNetworkPlan(stack: v1, existing: held, prune: true)
        #expect(pruned.entries.last?.action == .remove(id: "id-home_old"))

        // Refused before anything changes.
        #expect(throws: ClusterError.notFound("network ext is external and does not exist (hako cluster network create ext)")) {
            try StackNetworkPlan(stack: v1, existing: [cluster], prune: false)
        }
        #expect(throws: ClusterError.conflict("network home_front exists and is not part of stack home")) {
            try StackNetworkPlan(stack: v1, existing: [cluster, ext, StackSpecsTests.network("home_front", stack: "lab")], prune: false)
        }
        let moved = [cluster, ext, StackSpecsTests.network("home_front", subnet: "10.98.0.0/24", attachable: true)]
        #expect(throws: ClusterError.conflict("network home_front exists with other settings (subnet 10.98.0.0/24 → 10.97.0.0/24): a cluster network cannot change; remove the stack first, or give the network another name")) {
            try StackNetworkPlan(stack: v1, existing: moved, prune: false)
        }
    }

    /// A redeploy compares specs with the services' network ids bound by name (as secrets').
    @Test func networkIdsBoundByTheCoordinatorAreNoChange() throws {
        let (specs, _) = try load("services:\n  web: {image: x}\n")
        var held = specs[0]
        held.networks[0].id = "n1"
        #expect(StackPlan(stack: "home", specs: specs, existing: [StackPlan.Existing(id: "s", version: 2, spec: held)], prune: false).entries.map(\.action)
                == [.unchanged(id: "s")])
    }

    @Test func aDeployIsADiffOfTheStacksServices() throws {
        let (specs, _) = try load(StackSpecsTests.home)
        var existing = specs.enumerated().map { StackPlan.Existing(id: "id\($0.offset)", version: 1, spec: $0.element) }
        // Resolved platforms stay with an unchanged image.
        existing[0].spec.platforms = ["linux/arm64"]
        // Another stack's and a loose service are never touched.
        var other = ServiceSpec(name: "lab_web", image: "x")
        other.serviceLabels[ServiceSpec.stackNamespaceLabel] = "lab"
        existing.append(StackPlan.Existing(id: "other", version: 1, spec: other))
        existing.append(StackPlan.Existing(id: "loose", version: 1, spec: ServiceSpec(name: "home_loose", image: "x")))
        var gone = ServiceSpec(name: "home_old", image: "x")
        gone.serviceLabels[ServiceSpec.stackNamespaceLabel] = "home"
        existing.append(StackPlan.Existing(id: "old", version: 3, spec: gone))

        var changed = specs
        changed[2].image = "nginx:1.26"
        changed[2].container.mounts.removeLast()
        let plan = StackPlan(stack: "home", specs: changed, existing: existing, prune: false)
        #expect(plan.entries.map(\.service) == ["home_kv", "home_old", "home_sensor", "home_web"])
        #expect(plan.entries[0].action == .unchanged(id: "id0"))
        #expect(plan.entries[1].action == .keep(id: "old"))
        #expect(plan.entries[2].action == .unchanged(id: "id1"))
        guard case .update(let id, let version, let spec, let fields) = plan.entries[3].action else { Issue.record("\(plan.entries[3])"); return }
        #expect(id == "id2" && version == 1 && spec == changed[2])
        #expect(fields == ["container.mounts", "image"])

        let pruned = StackPlan(stack: "home", specs: [], existing: existing, prune: true)
        #expect(pruned.entries.map(\.action) == [.remove(id: "id0"), .remove(id: "old"), .remove(id: "id1"), .remove(id: "id2")])
        let fresh = StackPlan(stack: "new", specs: [specs[0]], existing: existing, prune: true)
        #expect(fresh.entries.map(\.action) == [.create(specs[0])])
    }
}
