#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// `hako cluster ca rotate` on the harness: two agents in their own network
/// namespaces, a running service, real TLS. The files on disk and each
/// node's own `hako ps` are the truth; openssl only observes.
@Suite(.needsRoot, .serialized)
final class ClusterCATests {
    let h = ClusterHarness("ca", nodes: 2)

    deinit {
        if h.failed { print(h.logs()) }
        h.teardown()
    }

    func openssl(_ args: String...) -> Output { Subprocess.run(["/usr/bin/openssl"] + args) }

    @Test func rotationMovesEveryNodeToTheNewRootWithoutDowntime() throws {
        let create = h.cluster(["service", "create", "--no-resolve-image", "--name", "keep", "--replicas", "2", "--stop-timeout", "1",
                                "--wait", "--timeout", "60s", "busybox:test", "sleep", "3600"])
        try #require(create.status == 0, "\(create.stderr)")
        let before = h.running("keep")
        try #require(before.map(\.count) == [1, 1])
        // The admin's credentials as they were, to try after the rotation.
        let oldAdmin = h.base + "/admin-old"
        try FileManager.default.createDirectory(atPath: oldAdmin, withIntermediateDirectories: true)
        for f in ["admin.crt", "admin.key", "coordinator"] {
            try FileManager.default.copyItem(atPath: h.base + "/admin/" + f, toPath: oldAdmin + "/" + f)
        }
        let pki = h.base + "/coordinator/pki"
        let oldSubject = openssl("x509", "-noout", "-subject", "-in", pki + "/ca.crt").stdout

        let rotate = h.cluster(["ca", "rotate", "--timeout", "60s"], timeout: 90)
        #expect(rotate.status == 0, "\(rotate.stdout)\(rotate.stderr)")
        #expect(rotate.stdout.contains("CA rotation complete"), "\(rotate.stdout)")
        if rotate.status != 0 { h.failed = true }

        let newRoot = pki + "/ca.crt"
        let newSubject = openssl("x509", "-noout", "-subject", "-in", newRoot).stdout
        #expect(newSubject != oldSubject && newSubject.contains("hako cluster CA 20"), "\(newSubject)")
        #expect(!FileManager.default.fileExists(atPath: pki + "/ca-previous.crt"), "the old root is no longer kept")
        let status = h.cluster("ca", "status").stdout
        #expect(status.contains("rotation:  none"), "\(status)")
        // Every agent holds a certificate of the new root on disk, and ends trusting it alone.
        for n in h.nodes {
            let identity = n.dir + "/state/node.pem"
            let issuer = openssl("x509", "-noout", "-issuer", "-in", identity).stdout
            #expect(issuer.replacingOccurrences(of: "issuer=", with: "") == newSubject.replacingOccurrences(of: "subject=", with: ""), "\(n.name): \(issuer)")
            #expect(openssl("verify", "-CAfile", newRoot, identity).status == 0, "\(n.name)'s certificate is signed by the new root")
            #expect(h.eventually(10) {
                (try? String(contentsOfFile: n.dir + "/state/ca.crt", encoding: .utf8)) == (try? String(contentsOfFile: newRoot, encoding: .utf8))
            }, "\(n.name) trusts the new root alone")
            let mode = (try? FileManager.default.attributesOfItem(atPath: identity)[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600)
        }
        #expect(openssl("verify", "-CAfile", newRoot, h.base + "/admin/admin.crt").status == 0, "the admin's new certificate")
        // No downtime: the same containers, both nodes ready and heartbeating, no node event since.
        #expect(h.running("keep") == before, "the replicas kept running")
        #expect(h.readyNodes() == 2)
        usleep(1_000_000)
        let seen = h.json("node", "ls").compactMap { $0["lastSeenAgo"] as? Double }
        #expect(seen.count == 2 && seen.allSatisfy { $0 < 1 }, "heartbeats go on: \(seen)")
        let events = h.json("events").filter { $0["kind"] as? String == "node" && ["suspect", "down"].contains($0["action"] as? String ?? "") }
        #expect(events.isEmpty, "\(events)")
        // The admin CLI keeps working; a certificate of the old root is refused by the coordinator.
        #expect(h.cluster("node", "ls").status == 0)
        try FileManager.default.copyItem(atPath: newRoot, toPath: oldAdmin + "/ca.crt")
        let refused = Subprocess.run(h.inUnderlay([Binaries.hako, "cluster", "node", "ls", "--credentials", oldAdmin]), env: h.adminEnv)
        #expect(refused.status == 125, "\(refused.stdout)\(refused.stderr)")
        // The agents reconnect with their new identity.
        h.killAgent(0)
        h.startAgent(0)
        #expect(h.eventually(20) { self.h.readyNodes() == 2 })
        #expect(h.running("keep") == before)
        h.cluster("service", "rm", "keep")
        #expect(h.eventually(30) { self.h.runningCount("keep").reduce(0, +) == 0 })
    }

    /// A node that is down holds the rotation back (the old root stays
    /// trusted, `rotate` says who is missing and exits 125); its agent back,
    /// it renews at `hello` and the rotation finishes by itself.
    @Test func aNodeDownDuringTheRotationRenewsWhenItComesBack() throws {
        h.killAgent(1)
        #expect(h.eventually(20) { self.h.readyNodes() == 1 })
        let rotate = h.cluster(["ca", "rotate", "--timeout", "2s"], timeout: 60)
        #expect(rotate.status == 125, "\(rotate.stdout)\(rotate.stderr)")
        #expect(rotate.stderr.contains("node2") && rotate.stderr.contains("has not finished"), "\(rotate.stderr)")
        let pki = h.base + "/coordinator/pki"
        #expect(FileManager.default.fileExists(atPath: pki + "/ca-previous.crt"), "the old root is still trusted")
        #expect(h.cluster("ca", "status").stdout.contains("node2"))
        #expect(h.cluster("node", "ls").status == 0, "the admin CLI works during the rotation")
        h.startAgent(1)
        #expect(h.eventually(30) { self.h.cluster("ca", "status").stdout.contains("rotation:  none") }, "\(self.h.cluster("ca", "status").stdout)")
        #expect(!FileManager.default.fileExists(atPath: pki + "/ca-previous.crt"))
        for n in h.nodes {
            #expect(openssl("verify", "-CAfile", pki + "/ca.crt", n.dir + "/state/node.pem").status == 0, "\(n.name) holds a certificate of the new root")
        }
        #expect(h.eventually(20) { self.h.readyNodes() == 2 })
    }
}
