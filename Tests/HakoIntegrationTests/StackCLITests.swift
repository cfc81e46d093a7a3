import Foundation
import HakoSystem
#if canImport(HakoTestSupport)
import HakoTestSupport
#endif
import Testing

/// `hako cluster stack deploy` and `service create`'s container options
/// refuse bad input before they reach any coordinator: exit 125, the reason,
/// and (for Compose files) the file and line. No cluster, no root.
@Suite struct StackCLITests {
    func run(_ args: [String], files: [String: String] = [:]) throws -> Output {
        let dir = try TempDir("hako-stack-cli")
        for (name, text) in files { FileManager.default.createFile(atPath: dir.path + "/" + name, contents: Data(text.utf8)) }
        // Credentials that do not exist: nothing may get as far as connecting.
        let words = args.map { $0.replacingOccurrences(of: "DIR", with: dir.path) }
        return Subprocess.run([Binaries.hako, "cluster"] + words.prefix(2) + ["--credentials", dir.path + "/none"] + words.dropFirst(2), timeout: 30)
    }

    @Test func composeErrorsNameTheFileAndLine() throws {
        let r = try run(["stack", "deploy", "-c", "DIR/compose.yml", "home"], files: ["compose.yml": """
            services:
              web:
                image: nginx
                imag: typo
            """])
        #expect(r.status == 125 && r.stderr.contains("compose.yml:4: services.web.imag: unknown key"), "\(r.stderr)")
    }

    @Test func aSecretTheClusterCannotGiveIsRefusedBeforeConnecting() throws {
        let r = try run(["stack", "deploy", "-c", "DIR/compose.yml", "home"], files: ["compose.yml": """
            services:
              db: {image: postgres, secrets: [{source: pw, uid: postgres}]}
            secrets:
              pw: {external: true}
            """])
        #expect(r.status == 125 && r.stderr.contains("service home_db: secrets: pw: uid and gid must be numbers"), "\(r.stderr)")
    }

    @Test func aNetworkTheClusterCannotMakeIsRefusedWithItsLine() throws {
        var r = try run(["stack", "deploy", "-c", "DIR/compose.yml", "home"], files: ["compose.yml": """
            services:
              web: {image: nginx, networks: [front]}
            networks:
              front:
                driver: bridge
            """])
        #expect(r.status == 125 && r.stderr.contains("compose.yml:5: networks.front.driver: driver \"bridge\" is not supported"), "\(r.stderr)")
        r = try run(["stack", "deploy", "-c", "DIR/compose.yml", "home"], files: ["compose.yml": """
            services:
              web: {image: nginx, networks: [back]}
            networks:
              back: {name: ingress}
            """])
        #expect(r.status == 125 && r.stderr.contains("network back: network name ingress is reserved"), "\(r.stderr)")
    }

    @Test func aMissingFileAndABadStackName() throws {
        var r = try run(["stack", "deploy", "-c", "DIR/nope.yml", "home"])
        #expect(r.status == 125 && r.stderr.contains("nope.yml: no such file"), "\(r.stderr)")
        r = try run(["stack", "deploy", "-c", "DIR/c.yml", "-bad"], files: ["c.yml": "services:\n  a: {image: x}\n"])
        #expect(r.status != 0)
        r = try run(["stack", "deploy", "-c", "DIR/c.yml", "_bad"], files: ["c.yml": "services:\n  a: {image: x}\n"])
        #expect(r.status == 125 && r.stderr.contains("invalid stack name"), "\(r.stderr)")
    }

    @Test func serviceContainerOptionsAreCheckedBeforeConnecting() throws {
        for (flag, value, message) in [("--mount", "type=volume,source=a/b,target=/x", "not a valid volume name"),
                                       ("--mount", "type=bind,source=/srv", "a target is required"),
                                       ("--device", "/dev/i2c-1:/dev/i2c-1:rx", "permissions are some of r, w, m"),
                                       ("--hostname", "{{.Node.Name}}", "unknown field"),
                                       ("--dns", "resolver.lan", "not an IPv4 address"),
                                       ("--sysctl", "novalue", "KEY=VALUE"),
                                       ("--stop-grace-period", "soon", "invalid --stop-grace-period")] {
            let r = try run(["service", "create", "--no-resolve-image", flag, value, "busybox"])
            #expect(r.status == 125 && r.stderr.contains(message), "\(flag) \(value): \(r.stderr)")
        }
    }
}
