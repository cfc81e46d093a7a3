import HakoTestSupport
import Testing
import Foundation
import Glibc
import HakoSystem
@testable import HakoImage
@testable import HakoTransport

/// Pull and push against an in-process registry: token auth, redirects,
/// indexes and platforms, and every kind of bad answer — each refused with
/// an error that says what, and nothing of it left in the store.
@Suite(.needsRoot) struct RegistryTests {
    final class Fixture {
        let tmp: TempDir
        let registry: FakeRegistry
        let store: ImageStore
        var options: RegistryOptions

        init() throws {
            tmp = try TempDir("hako-registry")
            registry = try FakeRegistry()
            store = try ImageStore(dataRoot: tmp.sub("data"))
            options = RegistryOptions(credentials: CredentialStore(path: tmp.sub("data/auth.json")))
        }

        func ref(_ repo: String, _ tag: String = "latest") -> String { "\(registry.domain)/\(repo):\(tag)" }

        func pull(_ reference: String, platform: PlatformSpec? = nil) throws -> PullResult {
            try store.pull(reference, platform: platform, registry: options)
        }

        /// The store holds no temp files, and only blobs that hash to their names.
        func expectClean(sourceLocation: SourceLocation = #_sourceLocation) throws {
            #expect(names(tmp.sub("data/images/tmp")).isEmpty, sourceLocation: sourceLocation)
            for name in names(tmp.sub("data/images/blobs/sha256")) {
                let bytes = try FS.readFile(tmp.sub("data/images/blobs/sha256/" + name))
                #expect(try Digest.sha256(of: bytes).hex == name, sourceLocation: sourceLocation)
            }
        }
    }

    private func message(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }

    /// Whether `body` throws a HakoError whose kind is "image not found" (Docker answers a platform missing from an index with 404).
    private func isImageNotFound(_ body: () throws -> Void) -> Bool {
        do { try body(); return false } catch let e as HakoError {
            if case .notFound(.image, _) = e.kind { return true }
            return false
        } catch { return false }
    }

    @Test func pullWithTokenAuthRedirectsAndNothingTwice() throws {
        let f = try Fixture()
        let image = try FakeImage(layers: [["bin/hello": "world"], ["etc/motd": "hi"]])
        image.publish(f.registry, "team/app", tag: "1.0")
        let result = try f.pull(f.ref("team/app", "1.0"))
        #expect(result.image.id == image.configDigest.hex)
        #expect(result.digest == image.manifestDigest)
        #expect(result.downloadedLayers == 2)
        #expect(result.image.references == ["\(f.registry.domain)/team/app:1.0"])
        #expect(result.image.repoDigests == ["\(f.registry.domain)/team/app@\(image.manifestDigest)"])
        #expect(result.image.config.cmd == ["/bin/sh"])
        #expect(readText(result.image.layerDirs[0] + "/bin/hello") == "world")
        #expect(readText(result.image.layerDirs[1] + "/etc/motd") == "hi")
        // The token was asked for with the repository's scope and the challenge's service.
        let token = try #require(f.registry.server.requests.first { $0.path == "/token" })
        #expect(token.query["scope"] == "repository:team/app:pull")
        #expect(token.query["service"] == "fake")
        #expect(f.registry.blobDownloads == 3)   // two layers and the config
        try f.expectClean()
        // Stored as the registry sent it: the manifest digest is kept.
        #expect(f.store.content.contains(image.manifestDigest))

        // A second pull transfers no blob; by digest and through the ID too.
        let again = try f.pull(f.ref("team/app", "1.0"))
        #expect(again.downloadedLayers == 0 && again.image.id == result.image.id)
        _ = try f.pull("\(f.registry.domain)/team/app@\(image.manifestDigest)")
        #expect(f.registry.blobDownloads == 3)
        #expect(try f.store.resolve("\(f.registry.domain)/team/app@\(image.manifestDigest)").id == result.image.id)

        // Another image sharing the lower layer fetches only its own.
        let second = try FakeImage(layers: [["bin/hello": "world"], ["etc/other": "x"]])
        second.publish(f.registry, "team/app", tag: "2.0")
        #expect(try f.pull(f.ref("team/app", "2.0")).downloadedLayers == 1)
        #expect(f.registry.blobDownloads == 5)   // its own layer and config
    }

    @Test func indexesPickThePlatform() throws {
        let f = try Fixture()
        let amd = try FakeImage(layers: [["arch": "amd64"]], architecture: "amd64")
        let arm = try FakeImage(layers: [["arch": "arm64"]], architecture: "arm64", variant: "v8")
        let armv7 = try FakeImage(layers: [["arch": "armv7"]], architecture: "arm", variant: "v7")
        for (i, dockerList) in [false, true].enumerated() {
            var entries: [OCIDescriptor] = []
            for (img, p) in [(amd, OCIPlatform(os: "linux", architecture: "amd64")),
                             (arm, OCIPlatform(os: "linux", architecture: "arm64", variant: "v8")),
                             (armv7, OCIPlatform(os: "linux", architecture: "arm", variant: "v7"))] {
                img.publish(f.registry, "multi", tag: nil)
                entries.append(OCIDescriptor(mediaType: dockerList ? MediaType.dockerManifest : MediaType.manifest,
                                             digest: img.manifestDigest, size: Int64(img.manifest.count), platform: p))
            }
            var index = OCIIndex(manifests: entries)
            if dockerList { index.mediaType = MediaType.dockerManifestList }
            let bytes = try CanonicalJSON.encode(index)
            f.registry.setManifest("multi", "v\(i)", bytes, index.mediaType ?? "")
            let arm64 = try f.pull(f.ref("multi", "v\(i)"), platform: try PlatformSpec(parsing: "linux/arm64"))
            #expect(arm64.image.architecture == "arm64")
            #expect(readText(arm64.image.layerDirs[0] + "/arch") == "arm64")
            #expect(arm64.digest == (try Digest.sha256(of: bytes)))   // the index's digest is the repo digest
            let v7 = try f.pull(f.ref("multi", "v\(i)"), platform: try PlatformSpec(parsing: "linux/arm/v7"))
            #expect(readText(v7.image.layerDirs[0] + "/arch") == "armv7")
            let host = try f.pull(f.ref("multi", "v\(i)"))
            #expect(host.image.architecture == PlatformSpec.host.architecture)
            let none = message { _ = try f.pull(f.ref("multi", "v\(i)"), platform: try PlatformSpec(parsing: "linux/ppc64le")) }
            #expect(none.contains("no image for platform linux/ppc64le") && none.contains("linux/arm64/v8"), "\(none)")
            #expect(isImageNotFound { _ = try f.pull(f.ref("multi", "v\(i)"), platform: try PlatformSpec(parsing: "linux/ppc64le")) })
        }
        // A single-platform image for another platform is refused when a platform is asked for.
        arm.publish(f.registry, "single", tag: "arm")
        let wrong = message { _ = try f.pull(f.ref("single", "arm"), platform: try PlatformSpec(parsing: "linux/amd64")) }
        #expect(wrong.contains("is for linux/arm64/v8, not linux/amd64"), "\(wrong)")
        #expect(isImageNotFound { _ = try f.pull(f.ref("single", "arm"), platform: try PlatformSpec(parsing: "linux/amd64")) })
        try f.expectClean()
    }

    @Test func platformsReadFromTheIndexWithoutPulling() throws {
        let f = try Fixture()
        let amd = try FakeImage(layers: [["arch": "amd64"]], architecture: "amd64")
        let arm = try FakeImage(layers: [["arch": "armv7"]], architecture: "arm", variant: "v7")
        var entries: [OCIDescriptor] = []
        for (img, p) in [(amd, OCIPlatform(os: "linux", architecture: "amd64")), (arm, OCIPlatform(os: "linux", architecture: "arm", variant: "v7")),
                         (amd, OCIPlatform(os: "unknown", architecture: "unknown"))] {   // an attestation entry
            img.publish(f.registry, "multi", tag: nil)
            entries.append(OCIDescriptor(mediaType: MediaType.manifest, digest: img.manifestDigest, size: Int64(img.manifest.count), platform: p))
        }
        f.registry.setManifest("multi", "latest", try CanonicalJSON.encode(OCIIndex(manifests: entries)), MediaType.index)
        #expect(try ImagePlatforms.lookup(f.ref("multi"), registry: f.options).map(\.description) == ["linux/amd64", "linux/arm/v7"])
        // A single-platform image: its configuration says.
        arm.publish(f.registry, "single", tag: "latest")
        #expect(try ImagePlatforms.lookup(f.ref("single"), registry: f.options).map(\.description) == ["linux/arm/v7"])
        #expect(f.registry.blobDownloads <= 1, "only the configuration, never a layer")
        let missing = message { _ = try ImagePlatforms.lookup(f.ref("nothing"), registry: f.options) }
        #expect(missing.contains("nothing:latest: manifest unknown"), "\(missing)")
        #expect(names(f.tmp.sub("data/images/blobs/sha256")).isEmpty, "nothing is stored")
    }

    @Test func dockerSchema2Pulls() throws {
        let f = try Fixture()
        let image = try FakeImage(layers: [["f": "docker"]], dockerTypes: true)
        image.publish(f.registry, "docker/img", tag: "v2")
        let result = try f.pull(f.ref("docker/img", "v2"))
        #expect(readText(result.image.layerDirs[0] + "/f") == "docker")
        #expect(result.image.manifestDigest == image.manifestDigest)
    }

    @Test func tamperedAndCutBlobsLeaveNothing() throws {
        let f = try Fixture()
        let image = try FakeImage(layers: [["a": String(repeating: "a", count: 100_000)], ["b": "b"]])
        image.publish(f.registry, "bad", tag: "tampered")
        let layer = try Digest.sha256(of: image.layers[0])
        f.registry.tampered.insert(layer.string)
        let m = message { _ = try f.pull(f.ref("bad", "tampered")) }
        #expect(m.contains(layer.string), "\(m)")
        #expect(!f.store.content.contains(layer))
        #expect(try f.store.snapshots.list().count <= 1)   // the good layer may stay; the bad one never
        #expect(try f.store.find(f.ref("bad", "tampered")) == nil)
        try f.expectClean()

        f.registry.tampered = []
        f.registry.cut.insert(layer.string)
        let cut = message { _ = try f.pull(f.ref("bad", "tampered")) }
        #expect(cut.contains("bytes of the body missing") || cut.contains("closed"), "\(cut)")
        #expect(!f.store.content.contains(layer))
        try f.expectClean()

        // A tampered config is refused too.
        f.registry.cut = []
        f.registry.tampered.insert(image.configDigest.string)
        #expect(message { _ = try f.pull(f.ref("bad", "tampered")) }.contains(image.configDigest.string))
        f.registry.tampered = []
        _ = try f.pull(f.ref("bad", "tampered"))
        try f.expectClean()
    }

    @Test func malformedManifestsGiveClearErrors() throws {
        let f = try Fixture()
        let good = try FakeImage(layers: [["x": "y"]])
        good.publish(f.registry, "m", tag: "good")
        let cases: [(String, String, String)] = [
            ("{not json", MediaType.manifest, "is not valid JSON"),
            (#"{"schemaVersion":1,"name":"m","tag":"x","fsLayers":[]}"#, "application/vnd.docker.distribution.manifest.v1+prettyjws", "schema 1"),
            (#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(good.configDigest)","size":\#(good.config.count)}}"#,
             MediaType.manifest, "lacks \"config\" or \"layers\""),
            (#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/octet-stream","digest":"\#(good.configDigest)","size":1},"layers":[]}"#,
             MediaType.manifest, "is not a container image"),
            (#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:xyz","size":1},"layers":[]}"#,
             MediaType.manifest, "invalid digest"),
            (#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(good.configDigest)","size":\#(good.config.count)},"layers":[]}"#,
             MediaType.manifest, "its config lists 1 layers, its manifest 0"),
            (#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#, MediaType.index, "has no \"manifests\" list"),
        ]
        for (i, (body, type, expected)) in cases.enumerated() {
            f.registry.setManifest("m", "bad\(i)", Array(body.utf8), type)
            let m = message { _ = try f.pull(f.ref("m", "bad\(i)")) }
            #expect(m.contains(expected), "case \(i): \(m)")
            #expect(!m.contains("\n"), "case \(i): one line")
        }
        f.registry.lyingDigestHeader = true
        let lie = message { _ = try f.pull(f.ref("m", "good")) }
        #expect(lie.contains("manifest") && lie.contains("does not match its digest"), "\(lie)")
        f.registry.lyingDigestHeader = false
        #expect(message { _ = try f.pull(f.ref("m", "absent")) }.contains("manifest unknown"))
        #expect(message { _ = try f.pull("host") }.contains("built-in host image"))
        try f.expectClean()
    }

    @Test func pushThenPullBack() throws {
        let f = try Fixture()
        let source = try FakeImage(layers: [["one": "1"], ["two": "2"]])
        source.publish(f.registry, "src", tag: "v1")
        let pulled = try f.pull(f.ref("src", "v1"))
        try f.store.tag(pulled.image.id, f.ref("dst/copy", "v1"))
        let uploadsBefore = f.registry.server.requests.filter { $0.method == "PUT" }.count
        let digest = try f.store.push(f.ref("dst/copy", "v1"), registry: f.options)
        #expect(digest == source.manifestDigest)  // pushed as stored
        #expect(f.registry.manifest("dst/copy", "v1") == source.manifest)
        // The blobs were already there (same registry): only the manifest went up.
        #expect(f.registry.server.requests.filter { $0.method == "PUT" }.count == uploadsBefore + 1)

        // An imported image goes up whole, and comes back identical.
        let tar = f.tmp.sub("root.tar")
        var b = TarBuilder()
        b.file("hello", "pushed")
        try FS.writeAtomic(tar, b.archive)
        let imported = try f.store.importRootfs(from: tar, reference: f.ref("made/here", "x"))
        let pushed = try f.store.push(f.ref("made/here", "x"), registry: f.options)
        #expect(f.registry.hasBlob(imported.diffIDs[0]))
        let other = try ImageStore(dataRoot: f.tmp.sub("other"))
        let back = try other.pull(f.ref("made/here", "x"), registry: f.options)
        #expect(back.image.id == imported.id && back.digest == pushed)
        #expect(readText(back.image.layerDirs[0] + "/hello") == "pushed")
    }

    @Test func loginKeepsCredentialsPrivately() throws {
        let f = try Fixture()
        f.registry.users = ["alice": "s3cret"]
        let image = try FakeImage(layers: [["f": "private"]])
        image.publish(f.registry, "private/img", tag: "1")
        let anonymous = message { _ = try f.pull(f.ref("private/img", "1")) }
        #expect(anonymous.contains("unauthorized"), "\(anonymous)")
        let wrong = message {
            try f.store.login(registry: f.registry.domain, credential: .init(username: "alice", password: "nope"), options: f.options)
        }
        #expect(wrong.contains("incorrect username or password"), "\(wrong)")
        #expect(!FS.exists(f.tmp.sub("data/auth.json")))
        try f.store.login(registry: f.registry.domain, credential: .init(username: "alice", password: "s3cret"), options: f.options)
        #expect(lstatOf(f.tmp.sub("data/auth.json")).map { $0.st_mode & 0o777 } == 0o600)
        let text = readText(f.tmp.sub("data/auth.json")) ?? ""
        #expect(text.contains(f.registry.domain) && text.contains(Data("alice:s3cret".utf8).base64EncodedString()))
        #expect(try f.pull(f.ref("private/img", "1")).image.id == image.configDigest.hex)
        #expect(try CredentialStore(path: f.tmp.sub("data/auth.json")).remove(for: f.registry.domain))
        #expect(message { _ = try f.pull(f.ref("private/img", "1")) }.contains("unauthorized"))
    }

    @Test func challengesParse() {
        let c = AuthChallenge.parse(#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#)
        #expect(c == [AuthChallenge(scheme: "bearer", parameters: ["realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                                                   "scope": "repository:library/alpine:pull"])])
        let two = AuthChallenge.parse(#"Basic realm="x y", Bearer realm=https://a/t, error="in\"valid""#)
        #expect(two.map(\.scheme) == ["basic", "bearer"])
        #expect(two[0].parameters["realm"] == "x y")
        #expect(two[1].parameters["realm"] == "https://a/t")
        #expect(two[1].parameters["error"] == "in\"valid")
        #expect(AuthChallenge.parse("").isEmpty)
        #expect(AuthChallenge.parse("Negotiate") == [AuthChallenge(scheme: "negotiate", parameters: [:])])
        #expect(RegistryErrorBody.describe(Array(#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}"#.utf8))
                == "name unknown: repository name not known")
        #expect(RegistryErrorBody.describe(Array("<html>".utf8)) == nil)
    }

    @Test func platformsParseAndMatch() throws {
        #expect(try PlatformSpec(parsing: "linux/arm64").description == "linux/arm64/v8")
        #expect(try PlatformSpec(parsing: "aarch64").description == "linux/arm64/v8")
        #expect(try PlatformSpec(parsing: "linux/arm").description == "linux/arm/v7")
        #expect(try PlatformSpec(parsing: "linux/armhf").description == "linux/arm/v7")
        #expect(try PlatformSpec(parsing: "linux/x86_64").description == "linux/amd64")
        #expect(try PlatformSpec(parsing: "linux/arm/7").description == "linux/arm/v7")
        let arm64 = try PlatformSpec(parsing: "linux/arm64")
        #expect(arm64.matches(os: "linux", architecture: "arm64", variant: nil))
        #expect(!arm64.matches(os: "linux", architecture: "arm", variant: "v8"))
        let v7 = try PlatformSpec(parsing: "linux/arm/v7")
        #expect(!v7.matches(os: "linux", architecture: "arm", variant: "v6"))
        #expect(try PlatformSpec(parsing: "linux/amd64").matches(os: "linux", architecture: "amd64", variant: "v3"))
        for bad in ["", "linux/", "a/b/c/d", "linux/arm 64"] {
            #expect(throws: ImageError.self) { _ = try PlatformSpec(parsing: bad) }
        }
        let opts = RegistryOptions(insecureRegistries: ["reg.lan:5000", "other.lan"])
        #expect(opts.isInsecure("reg.lan:5000") && opts.isInsecure("other.lan:443") && !opts.isInsecure("docker.io"))
        #expect(opts.isInsecure("localhost:5000") && opts.isInsecure("127.0.0.1:5000") && opts.isInsecure("[::1]:5000"))
        #expect(!opts.isInsecure("127.example.com"))
        #expect(RegistryOptions(tlsVerify: false).isInsecure("docker.io"))
        #expect(RegistryClient(domain: "docker.io", options: opts).apiHost == "registry-1.docker.io")
    }
}
