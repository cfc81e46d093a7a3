#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import HakoTestSupport
import Testing

/// hako against a real registry (Debian's docker-registry on 127.0.0.1):
/// push, pull of every manifest kind and platform, damaged and cut
/// transfers, TLS, login.
@Suite(.needsRoot, .serialized)
final class RegistryIntegrationTests {
    let host = TestHost.make("reg")

    deinit { host.cleanup() }

    /// Tags the busybox test image into the registry and pushes it.
    @discardableResult
    private func push(_ registry: TestRegistry, as tag: String, from source: TestHost? = nil) -> String {
        let h = source ?? host
        let ref = "\(registry.address)/test/busybox:\(tag)"
        let t = h.hako("tag", h.busybox, ref)
        #expect(t.status == 0, "\(t.stderr)")
        let r = h.hako("push", ref)
        #expect(r.status == 0, "push: \(r.stderr)")
        return ref
    }

    @Test func pushAndPullEveryManifestKind() throws {
        let registry = try TestRegistry(in: host)
        defer { registry.stop() }
        let oci = push(registry, as: "oci")
        // skopeo rewrites it as Docker schema 2.
        let podman = try Podman(in: host)
        let copy = podman.skopeo(["copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", "--format", "v2s2",
                                  "docker://" + oci, "docker://\(registry.address)/test/busybox:v2s2"])
        #expect(copy.status == 0, "\(copy.stderr)")
        // An OCI index and a Docker manifest list with linux/amd64 and linux/arm64 entries.
        for arch in ["amd64", "arm64"] {
            let r = podman.run(["import", "-q", "--os", "linux", "--arch", arch, "-c", "CMD [\"/bin/sh\"]", BusyboxImage.tarball,
                                "localhost/bb:\(arch)"])
            #expect(r.status == 0, "\(r.stderr)")
        }
        #expect(podman.run(["manifest", "create", "localhost/bb:multi"]).status == 0)
        for arch in ["amd64", "arm64"] {
            let r = podman.run(["manifest", "add", "--os", "linux", "--arch", arch, "localhost/bb:multi", podman.storeRef("localhost/bb:\(arch)")])
            #expect(r.status == 0, "\(r.stderr)")
        }
        for (format, tag) in [("oci", "multi"), ("v2s2", "multi-v2s2")] {
            let r = podman.run(["manifest", "push", "-q", "--all", "--format", format, "--tls-verify=false", "localhost/bb:multi",
                                "docker://\(registry.address)/test/busybox:\(tag)"])
            #expect(r.status == 0, "\(r.stderr)")
        }
        let kinds = ["oci": "application/vnd.oci.image.manifest.v1+json", "v2s2": "application/vnd.docker.distribution.manifest.v2+json",
                     "multi": "application/vnd.oci.image.index.v1+json", "multi-v2s2": "application/vnd.docker.distribution.manifest.list.v2+json"]
        for (tag, mediaType) in kinds.sorted(by: { $0.key < $1.key }) {
            // The registry really holds that kind.
            let head = Subprocess.run(host.prefix + ["/usr/bin/curl", "-sSI", "--noproxy", "*", "-H", "Accept: \(kinds.values.joined(separator: ", "))",
                                       "http://\(registry.address)/v2/test/busybox/manifests/\(tag)"]).stdout.lowercased()
            #expect(head.contains("content-type: \(mediaType)"), "\(tag): \(head)")
            let fresh = TestHost("pull", sharingNetworkWith: host)
            defer { fresh.cleanup() }
            let ref = "\(registry.address)/test/busybox:\(tag)"
            let pull = fresh.hako("pull", ref)
            #expect(pull.status == 0, "\(tag): \(pull.stderr)")
            #expect(pull.stdout.contains("Downloaded newer image") && pull.out.hasSuffix(ref), "\(pull.stdout)")
            let run = fresh.hako("run", "--rm", ref, "sh", "-c", "echo pulled $(cat /etc/passwd | head -1)")
            #expect(run.out == "pulled root:x:0:0:root:/root:/bin/sh", "\(tag): \(run.stderr)")
            #expect(fresh.imageInspect(ref)["Architecture"] as? String == "amd64")
            if tag.hasPrefix("multi") {
                let arm = fresh.hako("pull", "--platform", "linux/arm64", ref)
                #expect(arm.status == 0, "\(arm.stderr)")
                #expect(fresh.imageInspect(ref)["Architecture"] as? String == "arm64", "--platform linux/arm64 picks the arm64 entry")
                let none = fresh.hako("pull", "--platform", "linux/s390x", ref)
                #expect(none.status == 125 && none.stderr.contains("no image for platform linux/s390x"), "\(none.stderr)")
            }
            fresh.verifiedBlobs()
        }
    }

    @Test func runPullsWhenMissingAndASecondPullTransfersNothing() throws {
        let registry = try TestRegistry(in: host)
        defer { registry.stop() }
        let ref = push(registry, as: "latest")
        let fresh = TestHost("again", sharingNetworkWith: host)
        defer { fresh.cleanup() }
        let run = fresh.hako("run", "--rm", ref, "echo", "auto-pulled")
        #expect(run.out == "auto-pulled", "\(run.stderr)")
        #expect(run.stderr.contains("Unable to find image '\(ref)' locally"), "\(run.stderr)")
        let before = registry.blobGETs()
        #expect(before >= 2)   // the layer and the config
        let second = fresh.hako("pull", ref)
        #expect(second.status == 0 && second.stdout.contains("Image is up to date"), "\(second.stdout)")
        #expect(registry.blobGETs() == before, "a second pull downloads no blob")
        let never = fresh.hako("run", "--rm", "--pull", "never", "\(registry.address)/test/absent:1", "true")
        #expect(never.status == 125 && never.stderr.contains("no such image"), "\(never.stderr)")
        let always = fresh.hako("run", "--rm", "--pull", "always", ref, "true")
        #expect(always.status == 0 && registry.blobGETs() == before, "--pull always checks, and still fetches nothing new")
    }

    @Test func tamperedBlobsAndMalformedManifestsAreRefused() throws {
        let registry = try TestRegistry(in: host)
        defer { registry.stop() }
        let ref = push(registry, as: "tampered")
        let manifest = try JSONSerialization.jsonObject(with: Data(Subprocess.run(host.prefix + [
            "/usr/bin/curl", "-sS", "--noproxy", "*", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
            "http://\(registry.address)/v2/test/busybox/manifests/tampered"]).stdout.utf8)) as? [String: Any]
        let layer = ((manifest?["layers"] as? [[String: Any]])?.first?["digest"] as? String) ?? ""
        #expect(layer.hasPrefix("sha256:"))
        // One byte of the stored layer flipped, in the registry's own storage.
        TestFiles.sh("printf '\\377' | dd of=\(registry.blobData(layer)) bs=1 seek=5000 conv=notrunc status=none")
        let fresh = TestHost("tamper", sharingNetworkWith: host)
        defer { fresh.cleanup() }
        let pull = fresh.hako("pull", ref)
        #expect(pull.status == 125, "\(pull.stdout)")
        #expect(pull.stderr.contains(layer) && pull.stderr.contains("does not match its digest"), "\(pull.stderr)")
        #expect(!fresh.verifiedBlobs().contains(String(layer.dropFirst(7))), "the damaged blob is not stored")
        #expect(fresh.imageTempFiles.isEmpty)
        #expect(fresh.hako("images", "-q").out.split(separator: "\n").count == 1, "only the host image")

        // A manifest the registry accepts but that is no container image.
        let config = (manifest?["config"] as? [String: Any]) ?? [:]
        let odd = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.example.thing","digest":"\#(config["digest"] ?? "")","size":\#(config["size"] ?? 0)},"layers":[]}"#
        let put = Subprocess.run(host.prefix + ["/usr/bin/curl", "-sS", "--noproxy", "*", "-X", "PUT", "-H", "Content-Type: application/vnd.oci.image.manifest.v1+json",
                                  "--data-binary", odd, "-o", "/dev/null", "-w", "%{http_code}",
                                  "http://\(registry.address)/v2/test/busybox/manifests/odd"])
        #expect(put.out == "201", "\(put.stdout) \(put.stderr)")
        let bad = fresh.hako("pull", "\(registry.address)/test/busybox:odd")
        #expect(bad.status == 125 && bad.stderr.contains("is not a container image"), "\(bad.stderr)")
        #expect(bad.stderr.split(separator: "\n").count == 1, "one clear line")
        let missing = fresh.hako("pull", "\(registry.address)/test/busybox:nope")
        #expect(missing.stderr.contains("manifest unknown"), "\(missing.stderr)")
    }

    @Test func interruptedPullLeavesNoPartialBlob() throws {
        let registry = try TestRegistry(in: host)
        defer { registry.stop() }
        // A big layer that compresses badly, so the download takes a moment.
        let dir = try TestFiles.tempDir("hako-big")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        TestFiles.sh("mkdir \(dir)/root && head -c 150000000 /dev/urandom > \(dir)/root/big && tar -C \(dir)/root -czf \(dir)/big.tar.gz .")
        let ref = "\(registry.address)/test/big:1"
        #expect(host.hako("import", dir + "/big.tar.gz", ref).status == 0)
        #expect(host.hako("push", ref, timeout: 120).status == 0)
        let fresh = TestHost("interrupt", sharingNetworkWith: host)
        defer { fresh.cleanup() }
        let out = dir + "/pull.out"
        let pid = Subprocess.spawn(fresh.prefix + [Binaries.hako, "pull", ref], env: fresh.env, stdout: out, stderr: out)
        // Kill it once the layer is arriving (its snapshot is being unpacked).
        let started = fresh.eventually(30) { fresh.imageTempFiles.contains { $0.hasPrefix("snapshot-") } }
        kill(pid, SIGKILL)
        _ = Subprocess.waitBounded(pid, timeout: 10)
        #expect(started, "the pull got going before it was killed")
        fresh.verifiedBlobs()   // every stored blob is whole and verified: no partial one
        let layerDigest = host.imageInspect(ref)["RootFS"].flatMap { ($0 as? [String: Any])?["Layers"] as? [String] }?.first ?? ""
        #expect(layerDigest.hasPrefix("sha256:"))
        #expect(!FileManager.default.fileExists(atPath: fresh.root + "/images/snapshots/" + layerDigest.dropFirst(7)))
        // The next pull finishes the job and tidies up what the killed one left.
        let again = fresh.hako("pull", ref, timeout: 120)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(fresh.imageTempFiles.isEmpty)
        let big = fresh.root + "/images/snapshots/" + layerDigest.dropFirst(7) + "/fs/big"
        let size = (try? FileManager.default.attributesOfItem(atPath: big))?[.size] as? Int
        #expect(size == 150_000_000, "the whole layer is there")
        #expect(TestFiles.sha256(big) == TestFiles.sha256(dir + "/root/big"))
    }

    @Test func tlsWithACAFileOrWithoutVerification() throws {
        let registry = try TestRegistry(in: host, tls: true)
        defer { registry.stop() }
        let fresh = TestHost("tls", sharingNetworkWith: host)
        defer { fresh.cleanup() }
        // Loopback counts as insecure by default (as in Docker); turn that off to check the certificates.
        try fresh.writeEngineConfig(#"{"registries": {"insecure-loopback": false}}"#)
        let ref = "\(registry.address)/test/busybox:tls"
        #expect(fresh.hako("import", BusyboxImage.tarball, ref).status == 0)
        let refused = fresh.hako("push", ref)
        #expect(refused.status == 125 && refused.stderr.contains("certificate verification failed"), "\(refused.stderr)")
        let unverified = fresh.hako("push", "--tls-verify=false", ref)
        #expect(unverified.status == 0, "\(unverified.stderr)")
        try fresh.writeEngineConfig(#"{"registries": {"insecure-loopback": false, "ca": {"\#(registry.address)": "\#(registry.caFile ?? "")"}}}"#)
        #expect(fresh.hako("rmi", ref).status == 0)
        let pulled = fresh.hako("pull", ref)
        #expect(pulled.status == 0, "with the CA file: \(pulled.stderr)")
        // Listed as insecure, the registry is used without verification.
        try fresh.writeEngineConfig(#"{"registries": {"insecure-loopback": false, "insecure": ["\#(registry.address)"]}}"#)
        #expect(fresh.hako("pull", ref).status == 0)
        try fresh.writeEngineConfig(#"{"registries": {"insecure": 5}}"#)
        let broken = fresh.hako("pull", ref)
        #expect(broken.status == 125 && broken.stderr.contains("invalid engine configuration"), "\(broken.stderr)")
    }

    @Test func loginStoresCredentialsPrivately() throws {
        let registry = try TestRegistry(in: host, users: ["alice": "wonderland"])
        defer { registry.stop() }
        let ref = "\(registry.address)/private/busybox:1"
        #expect(host.hako("tag", host.busybox, ref).status == 0)
        let anonymous = host.hako("push", ref)
        #expect(anonymous.status == 125 && anonymous.stderr.contains("log in"), "\(anonymous.stderr)")
        let wrong = host.hako("login", "-u", "alice", "--password-stdin", registry.address, stdin: "nope\n")
        #expect(wrong.status == 125 && wrong.stderr.contains("incorrect username or password"), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: host.root + "/auth.json"))
        let login = host.hako("login", "-u", "alice", "--password-stdin", registry.address, stdin: "wonderland\n")
        #expect(login.out == "Login Succeeded", "\(login.stderr)")
        let attrs = try FileManager.default.attributesOfItem(atPath: host.root + "/auth.json")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect(host.hako("push", ref).status == 0)
        let fresh = TestHost("login", sharingNetworkWith: host)
        defer { fresh.cleanup() }
        #expect(fresh.hako("pull", ref).status == 125, "another root has no credentials")
        #expect(host.hako("rmi", ref).status == 0)
        #expect(host.hako("pull", ref).status == 0)
        #expect(host.hako("logout", registry.address).out.contains("Removing login credentials"))
        #expect(host.hako("pull", ref).status == 125)
    }
}
