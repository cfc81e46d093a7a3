import HakoTestSupport
import Testing
import Foundation
import Glibc
import HakoSystem
@testable import HakoImage

/// The image store end to end: import of a busybox rootfs, lookup, listing,
/// tagging (also concurrently), and its errors.
@Suite(.needsRoot) struct ImageStoreTests {
    /// A temp dir with a gzip busybox rootfs tarball built from /bin/busybox.
    final class Fixture {
        let tmp: TempDir
        let tarball: String
        let dataRoot: String

        init() throws {
            tmp = try TempDir("hako-store")
            let rootfs = try tmp.makeDir("rootfs")
            try FS.makeDirectories(rootfs + "/bin")
            try FS.writeAtomic(rootfs + "/bin/busybox", try FS.readFile("/bin/busybox"), mode: 0o755)
            try run(["/usr/sbin/chroot", rootfs, "/bin/busybox", "--install", "-s"])
            tarball = tmp.sub("rootfs.tar.gz")
            try run(["/usr/bin/tar", "-czf", tarball, "-C", rootfs, "."])
            dataRoot = tmp.sub("data")
        }
    }

    @Test func importBusyboxAndResolveIt() throws {
        let f = try Fixture()
        let store = try ImageStore(dataRoot: f.dataRoot)
        let config = ImageConfig(env: ["PATH=/bin"], cmd: ["sh"], labels: ["a": "b"], stopSignal: "SIGINT")
        let image = try store.importRootfs(from: f.tarball, reference: "busybox", config: config)
        #expect(image.references == ["busybox:latest"])
        #expect(image.id.count == 64)
        #expect(image.config == config)
        #expect(image.layerDirs.count == 1)
        #expect(image.architecture == Platform.architecture)
        #expect(image.os == "linux")
        #expect(image.created != nil)
        let fs = image.layerDirs[0]
        #expect(fs == f.dataRoot + "/images/snapshots/" + image.diffIDs[0].hex + "/fs")
        #expect(fileType(fs + "/bin/busybox") == S_IFREG)
        #expect(lstatOf(fs + "/bin/busybox").map { $0.st_mode & 0o777 } == 0o755)
        #expect(FS.readLink(fs + "/bin/sh") == "/bin/busybox")
        #expect(image.size >= Int64(lstatOf("/bin/busybox")?.st_size ?? 0))

        // Stored blobs: the layer (gzip, as given), the config (digest = ID), the manifest.
        let manifestDigest = try #require(image.manifestDigest)
        let manifest = try CanonicalJSON.decode(OCIManifest.self, try store.content.read(manifestDigest), what: "manifest")
        #expect(manifest.config.digest.hex == image.id)
        #expect(manifest.layers.count == 1)
        #expect(manifest.layers[0].mediaType == MediaType.layerGzip)
        #expect(try store.content.read(manifest.layers[0].digest, maxSize: 1 << 30) == (try FS.readFile(f.tarball)))
        let info = try #require(try store.snapshots.info(image.diffIDs[0]))
        #expect(info.parent == nil)
        #expect(info.diffID == image.diffIDs[0])

        // Every way to name it.
        for name in ["busybox", "busybox:latest", "docker.io/library/busybox:latest", image.id,
                     String(image.id.prefix(12)), "sha256:" + image.id, "sha256:" + image.id.prefix(8)] {
            #expect(try store.resolve(name).id == image.id, "\(name)")
        }
        // A second store instance (another hako command) sees the same.
        #expect(try ImageStore(dataRoot: f.dataRoot).resolve("busybox") == image)
        #expect(names(f.dataRoot + "/images/tmp").isEmpty)
    }

    @Test func importPlainTarFromStdin() throws {
        let f = try Fixture()
        let plain = f.tmp.sub("rootfs.tar")
        try run(["/bin/sh", "-c", "gzip -dc \(f.tarball) > \(plain)"])
        let store = try ImageStore(dataRoot: f.dataRoot)
        let saved = dup(0)
        let input = open(plain, O_RDONLY)
        #expect(saved >= 0 && input >= 0)
        dup2(input, 0)
        close(input)
        let image = Result { try store.importRootfs(from: "-", reference: "stdin/image:1") }
        dup2(saved, 0)
        close(saved)
        let imported = try image.get()
        let manifest = try CanonicalJSON.decode(OCIManifest.self, try store.content.read(try #require(imported.manifestDigest)),
                                                what: "manifest")
        // An uncompressed layer blob is the tar itself: its digest is the DiffID.
        #expect(manifest.layers[0].mediaType == MediaType.layer)
        #expect(manifest.layers[0].digest == imported.diffIDs[0])
        #expect(manifest.layers[0].digest == (try Digest.sha256(of: try FS.readFile(plain))))
        #expect(fileType(imported.layerDirs[0] + "/bin/busybox") == S_IFREG)
        #expect(imported.references == ["stdin/image:1"])
    }

    @Test func hostImageIsBuiltIn() throws {
        let tmp = try TempDir()
        let store = try ImageStore(dataRoot: tmp.sub("data"))
        for name in ["host", "host:latest", "docker.io/library/host", ImageStore.hostImageID, "sha256:" + ImageStore.hostImageID] {
            let image = try store.resolve(name)
            #expect(image.layerDirs == ["/"])
            #expect(image.isHost)
            #expect(image.config.env == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
            #expect(image.config.cmd == nil)
        }
        #expect(try store.list().map(\.id) == [ImageStore.hostImageID])
        #expect(throws: HakoError.self) { try store.tag("host", "myhost") }
        // Nothing about it is stored.
        #expect(!FS.exists(tmp.sub("data") + "/images/index.json"))
    }

    @Test func listTagAndErrors() throws {
        let f = try Fixture()
        let store = try ImageStore(dataRoot: f.dataRoot)
        let first = try store.importRootfs(from: f.tarball, reference: "one:v1")
        let second = try store.importRootfs(from: f.tarball, reference: nil)
        // The same layer is unpacked once and shared.
        #expect(first.layerDirs == second.layerDirs)
        #expect(first.id != second.id)
        #expect(second.references.isEmpty)

        try store.tag("one:v1", "localhost:5000/two")
        try store.tag(second.id, "one:v1")          // moves the tag
        #expect(try store.resolve("one:v1").id == second.id)
        #expect(try store.resolve("localhost:5000/two").id == first.id)
        let listed = try store.list()
        #expect(listed.map(\.id) == [second.id, first.id, ImageStore.hostImageID])  // newest first, host last
        #expect(listed[1].references == ["localhost:5000/two:latest"])

        func message(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch let e as HakoError { return e.description } catch { return "not a HakoError: \(error)" }
        }
        #expect(message { _ = try store.resolve("nothing") } == "no such image: nothing")
        #expect(message { _ = try store.resolve("nothing:here") } == "no such image: nothing:here")
        #expect(message { _ = try store.resolve("Bad Name") }?.hasPrefix("invalid reference format \"Bad Name\"") == true)
        #expect(message { try store.tag("one:v1", "UPPER") } == "invalid reference format \"UPPER\": repository name must be lowercase")
        #expect(message { try store.tag("missing", "x") } == "no such image: missing")
        #expect(message { try store.tag("one:v1", "host") }?.contains("reserved") == true)
        #expect(message { _ = try store.importRootfs(from: f.tarball, reference: "x@sha256:" + first.id) }?.contains("digest") == true)
        #expect(message { _ = try store.importRootfs(from: f.tmp.sub("absent.tar"), reference: nil) }?.contains("No such file") == true)
        for m in [message { _ = try store.resolve("Bad Name") }, message { _ = try store.resolve("nothing") }] {
            #expect(m?.contains("\n") == false)
        }
        // An ID prefix shared by two images is ambiguous (find one: the IDs are random).
        let common = zip(first.id, second.id).prefix { $0 == $1 }.count
        if common > 0 {
            #expect(message { _ = try store.resolve(String(first.id.prefix(common))) }?.contains("more than one image") == true)
        }
    }

    @Test func failedImportLeavesNothing() throws {
        let tmp = try TempDir()
        var b = TarBuilder()
        b.file("ok", "fine")
        b.file("../escape", "bad")
        try FS.writeAtomic(tmp.sub("bad.tar"), b.archive)
        let store = try ImageStore(dataRoot: tmp.sub("data"))
        #expect(throws: HakoError.self) { _ = try store.importRootfs(from: tmp.sub("bad.tar"), reference: "bad") }
        #expect(names(tmp.sub("data/images/tmp")).isEmpty)
        #expect(names(tmp.sub("data/images/snapshots")).isEmpty)
        #expect(names(tmp.sub("data/images/blobs/sha256")).isEmpty)
        #expect(try store.list().count == 1)
        #expect(names(tmp.path) == ["bad.tar", "data"])
    }

    @Test func concurrentTaggingLosesNothing() async throws {
        let f = try Fixture()
        let image = try ImageStore(dataRoot: f.dataRoot).importRootfs(from: f.tarball, reference: "base")
        let count = 16
        let dataRoot = f.dataRoot, id = image.id
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<count {
                group.addTask {
                    // Each task its own store, as separate hako commands would be.
                    let store = try ImageStore(dataRoot: dataRoot)
                    try store.tag("base", "tagged:\(i)")
                    try store.tag(id, "other/name\(i)")
                }
            }
            try await group.waitForAll()
        }
        let store = try ImageStore(dataRoot: f.dataRoot)
        let refs = try store.resolve("base").references
        #expect(refs.count == 1 + 2 * count)
        for i in 0..<count {
            #expect(refs.contains("tagged:\(i)"))
            #expect(refs.contains("other/name\(i):latest"))
        }
        #expect(!names(f.dataRoot + "/images").contains { $0.hasPrefix("index.json.tmp") })
    }

    @Test func configJSONUsesDockerKeys() throws {
        let config = ImageConfig(user: "1000:1000", exposedPorts: ["80/tcp", "53/udp"], env: ["A=1"], entrypoint: ["/bin/sh", "-c"],
                                 cmd: nil, volumes: ["/data"], workingDir: "/w", labels: ["k": "v"], stopSignal: "SIGQUIT")
        let text = String(decoding: try CanonicalJSON.encode(config), as: UTF8.self)
        #expect(text == #"{"Entrypoint":["/bin/sh","-c"],"Env":["A=1"],"ExposedPorts":{"53/udp":{},"80/tcp":{}},"Labels":{"k":"v"},"StopSignal":"SIGQUIT","User":"1000:1000","Volumes":{"/data":{}},"WorkingDir":"/w"}"#)
        let back = try CanonicalJSON.decode(ImageConfig.self, Array(text.utf8), what: "config")
        #expect(back.exposedPorts == ["53/udp", "80/tcp"])
        #expect(back.volumes == ["/data"])
        let docker = #"{"Cmd":null,"Entrypoint":null,"Env":["PATH=/bin"],"Hostname":"","OnBuild":null,"Labels":null}"#
        let parsed = try CanonicalJSON.decode(ImageConfig.self, Array(docker.utf8), what: "config")
        #expect(parsed == ImageConfig(env: ["PATH=/bin"]))
    }

    @Test func timestampsWithOffsets() {
        #expect(parseRFC3339("2024-01-02T03:04:05Z") == Timestamp(seconds: 1_704_164_645))
        #expect(parseRFC3339("2024-01-02T04:04:05.5+01:00") == Timestamp(seconds: 1_704_164_645, nanoseconds: 500_000_000))
        #expect(parseRFC3339("2024-01-02T02:34:05-00:30") == Timestamp(seconds: 1_704_164_645))
        #expect(parseRFC3339("yesterday") == nil)
    }
}
