import Testing
@testable import HakoCompose

/// Merging beyond the golden override: what an override sets wins (false
/// included), what it leaves out stays, lists keyed by what identifies them.
@Suite struct MergeTests {
    static func load(_ files: [String]) throws -> ComposeProject {
        let loader = ComposeLoader(environment: [:], projectDirectory: "/p") { _ in nil }
        return try loader.load(files.enumerated().map { (name: "f\($0.offset).yml", text: $0.element) }).project
    }

    @Test func overrideSetsAndLeaves() throws {
        let p = try MergeTests.load([
            """
            services:
              s:
                image: a
                read_only: true
                user: "1"
                secrets: [x, {source: y, target: y1}]
                healthcheck: {test: "true", interval: 10s, retries: 3}
                deploy:
                  replicas: 2
                  resources: {limits: {cpus: "1", memory: 64m}}
                  update_config: {parallelism: 2, delay: 5s}
            secrets:
              x: {file: ./x}
              y: {file: ./y}
            """,
            """
            services:
              s:
                read_only: false
                secrets: [{source: y, target: y2}]
                healthcheck: {interval: 30s}
                deploy:
                  resources: {limits: {memory: 128m}}
                  update_config: {delay: 1s}
            secrets:
              y: {external: true}
            """,
        ])
        let s = try #require(p.services["s"])
        #expect(s.image == "a")
        #expect(s.user == "1")
        #expect(s.readOnly == false)
        #expect(s.secrets.map { "\($0.source)>\($0.target ?? "")" } == ["x>", "y>y2"])
        #expect(s.healthcheck?.test == ["CMD-SHELL", "true"])
        #expect(s.healthcheck?.interval == 30)
        #expect(s.healthcheck?.retries == 3)
        #expect(s.deploy.replicas == 2)
        #expect(s.deploy.limits.cpus == 1)
        #expect(s.deploy.limits.memory == 128 << 20)
        #expect(s.deploy.updateConfig.parallelism == 2)
        #expect(s.deploy.updateConfig.delay == 1)
        #expect(p.secrets["y"]?.external == true)
        #expect(p.secrets["x"]?.file == "/p/x")
    }

    /// A reference may be declared in a later file.
    @Test func referencesAreCheckedAfterTheMerge() throws {
        let p = try MergeTests.load(["services:\n  s:\n    image: a\n    volumes: [data:/d]\n", "volumes:\n  data:\n"])
        #expect(p.volumes["data"] != nil)
    }

    /// A service only in the override must still have an image.
    @Test func serviceOnlyInTheOverrideNeedsAnImage() {
        #expect(throws: ComposeError(file: "f1.yml", line: 2, "services.t: no image (stack deploy does not build images)")) {
            try MergeTests.load(["services:\n  s:\n    image: a\n", "services:\n  t:\n    environment: [A=1]\n"])
        }
    }
}
