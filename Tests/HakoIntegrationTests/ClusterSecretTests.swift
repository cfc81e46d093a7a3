#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// Secrets and configs on the harness: a service's task reads its secret at
/// /run/secrets/NAME (mode 0400) and its config at its target; neither's
/// bytes are on any node's disk (data root, run root, agent state), in the
/// coordinator's database, or in any inspect output; a secret in use cannot
/// be removed; rotation (`--secret-rm old --secret-add new`) rolls the task.
@Suite(.needsRoot, .serialized)
final class ClusterSecretTests {
    let h = ClusterHarness("hs", nodes: 2)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    /// `hako cluster secret|config create NAME -` with the data on stdin.
    func create(_ kind: String, _ name: String, _ data: String) -> Output {
        Subprocess.run(h.inUnderlay([Binaries.hako, "cluster", kind, "create", "--credentials", h.adminCredentials, name, "-"]),
                       env: h.adminEnv, stdin: data)
    }

    /// Every regular file under `dirs` that holds `needle`.
    func filesHolding(_ needle: String, under dirs: [String]) -> [String] {
        let bytes = Data(needle.utf8)
        var hits: [String] = []
        for dir in dirs {
            guard let e = FileManager.default.enumerator(atPath: dir) else { continue }
            while let rel = e.nextObject() as? String {
                let path = dir + "/" + rel
                var st = stat()
                guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { continue }
                if let d = FileManager.default.contents(atPath: path), d.range(of: bytes) != nil { hits.append(path) }
            }
        }
        return hits
    }

    func task(_ service: String) -> (node: ClusterHarness.Node, container: String)? {
        guard let t = h.tasks(service).first(where: { $0["state"] as? String == "running" }),
              let node = h.nodes.first(where: { $0.name == t["nodeName"] as? String }),
              let c = t["containerID"] as? String else { return nil }
        return (node, c)
    }

    @Test func aSecretReachesOnlyItsTaskAndRotates() {
        let secret = "s3cr3t-\(UUID().uuidString)"
        let rotated = "r0tated-\(UUID().uuidString)"
        let config = "listen-\(UUID().uuidString)"
        #expect(create("secret", "db-pw", secret).status == 0)
        #expect(create("config", "app-conf", config).status == 0)
        #expect(create("secret", "db-pw", secret).stderr.contains("already exists"))

        let r = h.cluster(["service", "create", "--no-resolve-image", "--name", "sec", "--secret", "source=db-pw,mode=0400",
                           "--config", "source=app-conf,target=/etc/app.conf,mode=0440", "--wait", "--timeout", "60s",
                           "busybox:test", "sleep", "3600"], timeout: 90)
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0, let (node, c) = task("sec") else { h.failed = true; return }

        // Inside the task: the bytes, the mode, read-only, on a tmpfs.
        #expect(h.onNode(node, ["exec", c, "cat", "/run/secrets/db-pw"]).stdout == secret)
        #expect(h.onNode(node, ["exec", c, "stat", "-c", "%a %u %g", "/run/secrets/db-pw"]).out == "400 0 0")
        #expect(h.onNode(node, ["exec", c, "cat", "/etc/app.conf"]).stdout == config)
        #expect(h.onNode(node, ["exec", c, "stat", "-c", "%a", "/etc/app.conf"]).out == "440")
        #expect(h.onNode(node, ["exec", c, "sh", "-c", "echo x > /run/secrets/db-pw"]).status != 0)
        let mounts = h.onNode(node, ["exec", c, "cat", "/proc/self/mountinfo"]).stdout
        #expect(mounts.split(separator: "\n").contains { $0.contains(" /run/secrets/db-pw ") && $0.contains(" - tmpfs ") && $0.contains(" ro,") },
                "\(mounts)")

        // Nowhere on disk: every node's directory (data root, run root, agent state, agent log), the
        // coordinator's (its database, Raft-less here) and its log — the whole harness directory.
        let dirs = [h.base]
        #expect(filesHolding(secret, under: dirs).isEmpty, "\(filesHolding(secret, under: dirs))")
        #expect(filesHolding(config, under: dirs).isEmpty)
        #expect(filesHolding("db-pw", under: [h.base + "/coordinator"]).isEmpty == false, "the store should at least name the secret")

        // Nor in inspect.
        let inspected = h.cluster("service", "inspect", "sec").stdout + h.cluster("secret", "inspect", "db-pw").stdout
            + h.cluster("config", "inspect", "app-conf").stdout + h.cluster("events").stdout
        #expect(!inspected.contains(secret) && !inspected.contains(config))
        #expect(h.cluster("secret", "inspect", "db-pw").stdout.contains("\"services\":[\"sec\"]"))

        // In use: refused, the service named.
        let rm = h.cluster("secret", "rm", "db-pw")
        #expect(rm.status != 0 && rm.stderr.contains("in use by service sec"), "\(rm.stderr)")

        // Rotation: a new secret at the same target; the task is replaced and reads the new bytes.
        #expect(create("secret", "db-pw-2", rotated).status == 0)
        let u = h.cluster(["service", "update", "--secret-rm", "db-pw", "--secret-add", "source=db-pw-2,target=db-pw,mode=0400",
                           "--wait", "--timeout", "60s", "sec"], timeout: 90)
        #expect(u.status == 0, "\(u.stderr)")
        #expect(h.eventually(30) { self.task("sec").map { $0.container != c } ?? false }, "\(h.tasks("sec", all: true))")
        if let (node2, c2) = task("sec") {
            #expect(h.onNode(node2, ["exec", c2, "cat", "/run/secrets/db-pw"]).stdout == rotated)
        }
        #expect(filesHolding(rotated, under: dirs).isEmpty)
        // The old one is free now.
        #expect(h.cluster("secret", "rm", "db-pw").status == 0)
        #expect(h.cluster("secret", "ls", "-q").stdout.split(separator: "\n").count == 1)

        h.cluster("service", "rm", "sec")
        #expect(h.eventually(20) { self.h.runningCount("sec") == [0, 0] })
    }

    /// Swarm's bound, 500 KiB, fits the protocol's lines both ways: from the CLI to the coordinator and from it to a node.
    @Test func theLargestSecretReachesItsTask() {
        let big = String((0..<(500 * 1024)).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement() ?? "x" })
        #expect(create("secret", "big", big + "x").stderr.contains("at most 512000"))
        let c = create("secret", "big", big)
        #expect(c.status == 0, "\(c.stderr)")
        let r = h.cluster(["service", "create", "--no-resolve-image", "--name", "bigsec", "--secret", "big", "--wait", "--timeout", "60s",
                           "busybox:test", "sleep", "3600"], timeout: 90)
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0, let (node, ctr) = task("bigsec") else { h.failed = true; return }
        #expect(h.onNode(node, ["exec", ctr, "cat", "/run/secrets/big"]).stdout == big)
        #expect(h.onNode(node, ["exec", ctr, "stat", "-c", "%a %s", "/run/secrets/big"]).out == "444 512000")
        h.cluster("service", "rm", "bigsec")
        #expect(h.eventually(20) { self.h.runningCount("bigsec") == [0, 0] })
        #expect(h.cluster("secret", "rm", "big").status == 0)
    }
}
