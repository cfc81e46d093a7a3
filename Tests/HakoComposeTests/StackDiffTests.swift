import Testing
@testable import HakoCompose

/// `stack deploy` as a diff: what is unchanged, changed (and which fields),
/// new, removed with --prune or kept without it.
@Suite struct StackDiffTests {
    static func stack(_ yaml: String, name: String = "home", env: [String: String] = [:]) throws -> Stack {
        let loader = ComposeLoader(environment: env, projectDirectory: "/p") { _ in nil }
        return try Stack.translate(try loader.load([(name: "c.yml", text: yaml)]).project, name: name)
    }

    static let v1 = """
        services:
          kv:
            image: kv:1
            deploy: {replicas: 1}
          web:
            image: web:1
            ports: ["8080:80"]
          old:
            image: old:1
        """

    @Test func redeployingTheSameFileChangesNothing() throws {
        let s = try StackDiffTests.stack(StackDiffTests.v1)
        let d = StackDiff(stack: s, existing: s.services, prune: true)
        #expect(d.entries.map(\.change) == [.unchanged, .unchanged, .unchanged])
    }

    @Test func changedNewRemovedAndKept() throws {
        let existing = try StackDiffTests.stack(StackDiffTests.v1).services
        let v2 = try StackDiffTests.stack("""
            services:
              kv:
                image: kv:1
                deploy: {replicas: 3}
              web:
                image: web:2
                ports: ["8080:80"]
                environment: {A: "1"}
              cache:
                image: cache:1
            """)
        let pruned = StackDiff(stack: v2, existing: existing, prune: true)
        #expect(pruned.entries == [
            .init(service: "home_cache", change: .created),
            .init(service: "home_kv", change: .changed(["mode"])),
            .init(service: "home_old", change: .removed),
            .init(service: "home_web", change: .changed(["env", "image", "labels"])),
        ])
        let kept = StackDiff(stack: v2, existing: existing, prune: false)
        #expect(kept.services { $0 == .kept } == ["home_old"])
        #expect(kept.services { $0 == .removed }.isEmpty)
    }

    /// Services of another stack, or of no stack, are never touched.
    @Test func otherStacksAreLeftAlone() throws {
        let other = try StackDiffTests.stack(StackDiffTests.v1, name: "lab").services
        var loose = other[0]
        loose.name = "home_kv"
        loose.labels = [:]
        let mine = try StackDiffTests.stack("services:\n  web:\n    image: web:1\n    ports: [\"8080:80\"]\n")
        let d = StackDiff(stack: mine, existing: other + [loose], prune: true)
        #expect(d.entries == [.init(service: "home_web", change: .created)])
    }

    /// An interpolated variable that changes is a changed service; one that does not, is not.
    @Test func interpolationFeedsTheDiff() throws {
        let yaml = "services:\n  web:\n    image: web:${TAG:-1}\n  db:\n    image: db\n"
        let before = try StackDiffTests.stack(yaml).services
        let same = StackDiff(stack: try StackDiffTests.stack(yaml, env: ["TAG": "1"]), existing: before, prune: true)
        #expect(same.services { $0 == .unchanged } == ["home_db", "home_web"])
        let bumped = StackDiff(stack: try StackDiffTests.stack(yaml, env: ["TAG": "2"]), existing: before, prune: true)
        #expect(bumped.entries == [.init(service: "home_db", change: .unchanged), .init(service: "home_web", change: .changed(["image", "labels"]))])
    }

    @Test func namesAreStackUnderscoreKey() throws {
        let s = try StackDiffTests.stack("""
            services:
              web:
                image: web
                volumes: [data:/d, shared:/s]
                secrets: [pw]
                networks: [front, ext]
            volumes:
              data:
              shared:
                name: shared-data
            networks:
              front:
              ext:
                external: true
            secrets:
              pw:
                file: ./pw.txt
            """)
        #expect(s.services.map(\.name) == ["home_web"])
        #expect(s.volumes.map(\.name) == ["home_data", "shared-data"])
        #expect(s.networks.map(\.name) == ["ext", "home_front"])
        #expect(s.secrets.map { "\($0.name) \($0.file ?? "")" } == ["home_pw /p/pw.txt"])
        let web = try #require(s.services.first)
        #expect(web.mounts.map { $0.source ?? "" } == ["home_data", "shared-data"])
        #expect(web.networks == ["home_front": ["web"], "ext": ["web"]])
    }

    @Test(arguments: ["", "-home", "a_b", "stack name", String(repeating: "s", count: 41)])
    func invalidStackNames(_ name: String) throws {
        let loader = ComposeLoader(environment: [:], projectDirectory: "/p") { _ in nil }
        let p = try loader.load([(name: "c.yml", text: "services: {}\n")]).project
        #expect(throws: ComposeError.self) { try Stack.translate(p, name: name) }
    }

    @Test func tooLongServiceName() throws {
        let yaml = "services:\n  \(String(repeating: "w", count: 60)):\n    image: x\n"
        #expect(throws: ComposeError(file: "", line: nil, "service name \"home_\(String(repeating: "w", count: 60))\" is longer than 63 characters")) {
            try StackDiffTests.stack(yaml)
        }
    }

    /// A file Docker's examples would call minimal maps to today's ServiceSpec with no gaps.
    @Test func plainServiceNeedsNoClusterWork() throws {
        let s = try StackDiffTests.stack("""
            services:
              web:
                image: web
                command: ["serve", "--port", "80"]
                environment: [A=1]
                ports: ["8080:80", {target: 9000, published: 9000, mode: host}]
                user: "1000"
                working_dir: /srv
                stop_grace_period: 20s
                deploy:
                  replicas: 2
                  resources: {limits: {cpus: "0.5", memory: 64m}, reservations: {memory: 32m}}
                  restart_policy: {condition: on-failure, delay: 2s, max_attempts: 5}
                  update_config: {parallelism: 2}
                  placement: {constraints: [node.labels.zone==a]}
            """)
        #expect(try #require(s.services.first).clusterGaps == [])
    }
}
