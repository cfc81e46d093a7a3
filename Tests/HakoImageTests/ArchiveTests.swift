import HakoTestSupport
import Testing
import Foundation
import Glibc
import HakoSystem
@testable import HakoImage

/// save and load: round trips keep every digest; the legacy docker-archive,
/// Docker 25+'s layout and OCI archives load; a bad archive leaves nothing.
@Suite(.needsRoot) struct ArchiveTests {
    final class Fixture {
        let tmp: TempDir
        let store: ImageStore

        init() throws {
            tmp = try TempDir("hako-archive")
            store = try ImageStore(dataRoot: tmp.sub("data"))
        }

        /// Imports a one-file layer tarball as an image.
        func importImage(_ files: [String: String], as name: String?) throws -> Image {
            var b = TarBuilder()
            for (p, t) in files.sorted(by: { $0.key < $1.key }) { b.file(p, t) }
            let path = tmp.sub("in-\(UUID().uuidString).tar")
            try FS.writeAtomic(path, b.archive)
            return try store.importRootfs(from: path, reference: name, config: ImageConfig(cmd: ["sh"]))
        }

        func save(_ refs: [String], format: ArchiveFormat = .dockerArchive) throws -> String {
            let path = tmp.sub("saved-\(UUID().uuidString).tar")
            let sink = try AtomicFileSink(path: path)
            try store.save(refs, format: format, to: sink)
            try sink.commit()
            return path
        }
    }

    /// A store with nothing in it but what `expectedImages` images need.
    private func expectEmpty(_ dataRoot: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(names(dataRoot + "/images/tmp").isEmpty, sourceLocation: sourceLocation)
        #expect(names(dataRoot + "/images/blobs/sha256").isEmpty, sourceLocation: sourceLocation)
        #expect(names(dataRoot + "/images/snapshots").isEmpty, sourceLocation: sourceLocation)
        #expect(try ImageStore(dataRoot: dataRoot).list().count == 1, sourceLocation: sourceLocation)  // the host image
    }

    @Test func saveThenLoadKeepsEveryDigest() throws {
        let f = try Fixture()
        let a = try f.importImage(["a": "A"], as: "first:1")
        let b = try f.importImage(["b": "B"], as: nil)
        try f.store.tag("first:1", "localhost:5000/also/first:x")
        for format in ArchiveFormat.allCases {
            let path = try f.save(["first:1", "localhost:5000/also/first:x", b.id], format: format)
            let listing = try run(["/usr/bin/tar", "-tf", path]).split(separator: "\n").map(String.init)
            #expect(listing.contains("oci-layout") && listing.contains("index.json"))
            #expect(listing.contains("manifest.json") == (format == .dockerArchive))
            let other = f.tmp.sub("other-\(format.rawValue)")
            let loaded = try ImageStore(dataRoot: other).load(from: path)
            #expect(loaded.map(\.id) == [a.id, b.id])
            #expect(Set(loaded[0].names) == ["first:1", "localhost:5000/also/first:x"])
            #expect(loaded[1].names.isEmpty)
            let back = try ImageStore(dataRoot: other).resolve("first:1")
            #expect(back.id == a.id && back.manifestDigest == a.manifestDigest && back.diffIDs == a.diffIDs)
            #expect(readText(back.layerDirs[0] + "/a") == "A")
            #expect(try ImageStore(dataRoot: other).resolve(b.id).manifestDigest == b.manifestDigest)
            // Loading again changes nothing and adds nothing.
            let blobs = names(other + "/images/blobs/sha256")
            _ = try ImageStore(dataRoot: other).load(from: path)
            #expect(names(other + "/images/blobs/sha256") == blobs)
            #expect(names(other + "/images/tmp").isEmpty)
        }
        #expect(throws: HakoError.self) { _ = try f.save(["host"]) }
    }

    @Test func legacyDockerArchiveWithSharedLayersLoads() throws {
        let f = try Fixture()
        var layer = TarBuilder()
        layer.dir("etc/")
        layer.file("etc/os-release", "legacy")
        let tar = layer.archive
        var top = TarBuilder()
        top.file("top", "second layer")
        let diff1 = try Digest.sha256(of: tar), diff2 = try Digest.sha256(of: top.archive)
        let config = try CanonicalJSON.encode(OCIImage(created: "2020-01-01T00:00:00Z", architecture: "amd64", os: "linux", variant: nil,
                                                       config: ImageConfig(cmd: ["/bin/sh"]), diffIDs: [diff1, diff1, diff2], history: nil))
        let configHex = try Digest.sha256(of: config).hex
        // Layout of `docker save` before Docker 25: <id>/layer.tar, the same layer
        // twice (the second a symlink), <config>.json, manifest.json, repositories.
        var archive = TarBuilder()
        archive.dir("l1/"); archive.file("l1/VERSION", "1.0"); archive.file("l1/json", "{}")
        archive.appendRaw(TarBuilder.header(name: "l1/layer.tar", type: TarBuilder.TypeFlag.regular.rawValue, size: tar.count), content: tar)
        archive.dir("l2/"); archive.symlink("l2/layer.tar", to: "../l1/layer.tar")
        archive.dir("l3/")
        archive.appendRaw(TarBuilder.header(name: "l3/layer.tar", type: TarBuilder.TypeFlag.regular.rawValue, size: top.archive.count), content: top.archive)
        archive.appendRaw(TarBuilder.header(name: configHex + ".json", type: TarBuilder.TypeFlag.regular.rawValue, size: config.count), content: config)
        let manifest = #"[{"Config":"\#(configHex).json","RepoTags":["legacy:1.0"],"Layers":["l1/layer.tar","l2/layer.tar","l3/layer.tar"]}]"#
        archive.file("manifest.json", manifest)
        archive.file("repositories", #"{"legacy":{"1.0":"l3"}}"#)
        let path = f.tmp.sub("legacy.tar")
        try FS.writeAtomic(path, archive.archive)
        try run(["/bin/gzip", "-k", path])
        let loaded = try f.store.load(from: path + ".gz")
        #expect(loaded == [LoadedImage(id: configHex, names: ["legacy:1.0"])])
        let image = try f.store.resolve("legacy:1.0")
        #expect(image.layerDirs.count == 3)
        #expect(readText(image.layerDirs[2] + "/top") == "second layer")
        #expect(readText(image.layerDirs[1] + "/etc/os-release") == "legacy")
        // Legacy layers are uncompressed tars: the blob is the DiffID.
        let m = try CanonicalJSON.decode(OCIManifest.self, try f.store.content.read(try #require(image.manifestDigest)), what: "m")
        #expect(m.layers.map(\.digest) == [diff1, diff1, diff2] && m.layers[0].mediaType == MediaType.layer)
        // Only what the image uses stays: the VERSION, json and repositories files do not.
        #expect(Set(names(f.tmp.sub("data/images/blobs/sha256"))) == Set([diff1.hex, diff2.hex, configHex, m.config.digest.hex, image.manifestDigest?.hex ?? ""]))
    }

    @Test func badArchivesLeaveNothing() throws {
        let f = try Fixture()
        let good = try f.importImage(["x": "y"], as: "good:1")
        let saved = try FS.readFile(try f.save(["good:1"]))
        let clean = f.tmp.sub("clean")
        func expectRefused(_ archive: [UInt8], _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let path = f.tmp.sub("bad-\(UUID().uuidString).tar")
            try FS.writeAtomic(path, archive)
            let m = errorText { _ = try ImageStore(dataRoot: clean).load(from: path) }
            #expect(m?.contains(fragment) == true, "got: \(m ?? "no error")", sourceLocation: sourceLocation)
            #expect(m?.contains("\n") == false, sourceLocation: sourceLocation)
            try expectEmpty(clean, sourceLocation: sourceLocation)
        }
        // A blob whose content does not match its name.
        let layerHex = try #require(good.manifestDigest.flatMap { d in
            try? CanonicalJSON.decode(OCIManifest.self, try f.store.content.read(d), what: "m").layers.first?.digest.hex
        })
        var tampered = saved
        let needle = Array("blobs/sha256/\(layerHex)".utf8)
        let at = try #require(saved.indices.first { saved[$0..<min($0 + needle.count, saved.count)].elementsEqual(needle) })
        tampered[at + 512 + 600] ^= 0xff   // inside that member's content
        try expectRefused(tampered, layerHex)

        // manifest.json naming a layer that is not there.
        var missing = TarBuilder()
        missing.file("cfg.json", "{}")
        missing.file("manifest.json", #"[{"Config":"cfg.json","RepoTags":["m:1"],"Layers":["nowhere/layer.tar"]}]"#)
        try expectRefused(missing.archive, "nowhere/layer.tar")

        // A layer that is not what the config says (DiffID).
        var layer = TarBuilder(); layer.file("f", "real")
        let config = try CanonicalJSON.encode(OCIImage(created: nil, architecture: "amd64", os: "linux", variant: nil, config: nil,
                                                       diffIDs: [try Digest.sha256(of: "something else")], history: nil))
        var wrong = TarBuilder()
        wrong.appendRaw(TarBuilder.header(name: "c.json", type: TarBuilder.TypeFlag.regular.rawValue, size: config.count), content: config)
        wrong.appendRaw(TarBuilder.header(name: "l.tar", type: TarBuilder.TypeFlag.regular.rawValue, size: layer.archive.count), content: layer.archive)
        wrong.file("manifest.json", #"[{"Config":"c.json","RepoTags":["w:1"],"Layers":["l.tar"]}]"#)
        try expectRefused(wrong.archive, "does not match")

        // A layer that escapes its root.
        var evil = TarBuilder(); evil.file("../../../../tmp/hako-escaped-\(getpid())", "x")
        let evilConfig = try CanonicalJSON.encode(OCIImage(created: nil, architecture: "amd64", os: "linux", variant: nil, config: nil,
                                                           diffIDs: [try Digest.sha256(of: evil.archive)], history: nil))
        var escape = TarBuilder()
        escape.appendRaw(TarBuilder.header(name: "c.json", type: TarBuilder.TypeFlag.regular.rawValue, size: evilConfig.count), content: evilConfig)
        escape.appendRaw(TarBuilder.header(name: "l.tar", type: TarBuilder.TypeFlag.regular.rawValue, size: evil.archive.count), content: evil.archive)
        escape.file("manifest.json", #"[{"Config":"c.json","RepoTags":["e:1"],"Layers":["l.tar"]}]"#)
        try expectRefused(escape.archive, "climbs above the layer root")
        #expect(!FS.exists("/tmp/hako-escaped-\(getpid())"))

        // Members that climb out of the archive, and things that are no archive.
        var climbing = TarBuilder(); climbing.file("../manifest.json", "[]")
        try expectRefused(climbing.archive, "climbs above the archive root")
        var plain = TarBuilder(); plain.file("README", "just a tarball")
        try expectRefused(plain.archive, "neither manifest.json nor index.json")
        try expectRefused(Array("not a tar at all".utf8), "malformed archive")
        try expectRefused(Array(saved.prefix(saved.count / 2)), "truncated")
    }
}
