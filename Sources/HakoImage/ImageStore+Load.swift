#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoSystem

/// The content of the current tar member as a byte source.
final class TarMemberSource: ByteSource {
    private let reader: TarReader
    init(_ reader: TarReader) { self.reader = reader }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try reader.read(into: buffer) }
}

/// `manifest.json` of a docker-archive (`docker save`, `podman save`).
struct DockerArchiveEntry: Codable {
    var Config: String
    var RepoTags: [String]?
    var Layers: [String]
}

/// What `load` brought in: each image's ID and the names it got.
public struct LoadedImage: Sendable, Equatable {
    public var id: String
    public var names: [String]
}

/// One pass over an archive: blobs stored (verified when named by digest),
/// small JSON kept; the layers are unpacked from the stored blobs afterwards.
final class ArchiveScan {
    /// Archive path → digest of its content in the store.
    var files: [String: Digest] = [:]
    /// Archive path → content, for small JSON members.
    var json: [String: [UInt8]] = [:]
    /// Archive path → the path it links to (symlinks and hardlinks).
    var links: [String: String] = [:]
    /// Blobs this load added (removed again unless an image ends up using them).
    var added: Set<Digest> = []

    /// Follows links (bounded) to the member that holds the content.
    func resolve(_ path: String) -> String {
        var p = path
        for _ in 0..<16 {
            guard let target = links[p] else { return p }
            p = target
        }
        return p
    }

    func digest(of path: String) -> Digest? { files[resolve(ArchiveScan.clean(path))] }

    /// "./a/../b" → "b"; nil when it climbs out.
    static func clean(_ path: String) -> String {
        (LayerUnpacker.cleanPath(path) ?? []).joined(separator: "/")
    }
}

extension ImageStore {
    /// Layers of a loaded image unpacked at once (as many as a pull downloads).
    static let loadUnpackWidth = 3

    /// `hako load -i FILE`: images from a docker-archive (the legacy layout of
    /// `docker save` and `podman save`, and Docker 25+'s OCI-layout-compatible
    /// one) or an OCI archive; plain, gzip or zstd. Every blob is checked
    /// against its digest, every layer against its config's DiffID; a failed
    /// load leaves no blob, snapshot or name behind.
    public func load(from path: String, unpack: UnpackOptions = UnpackOptions(),
                     progress: (any ProgressSink)? = nil) throws -> [LoadedImage] {
        try atBoundary("cannot load \(path == "-" ? "stdin" : path)") {
            try load(try FileSource.open(path), unpack: unpack, progress: progress)
        }
    }

    /// The same from a stream (the Docker API's `images/load` body), read once,
    /// never held whole: `what` names it in errors.
    public func load(from source: any ByteSource, what: String, unpack: UnpackOptions = UnpackOptions(),
                     progress: (any ProgressSink)? = nil) throws -> [LoadedImage] {
        try atBoundary("cannot load \(what)") { try load(source, unpack: unpack, progress: progress) }
    }

    private func load(_ source: any ByteSource, unpack: UnpackOptions, progress: (any ProgressSink)?) throws -> [LoadedImage] {
        let lock = try beginAddingContent()
        defer { lock.release() }
        let scan = ArchiveScan()
        do {
            try readArchive(source, into: scan, progress: progress)
            let result = try registerArchive(scan, unpack: unpack, progress: progress)
            try dropUnused(scan)
            return result
        } catch {
            try? dropUnused(scan)
            throw error
        }
    }

    /// Removes the blobs this load added that no image uses.
    private func dropUnused(_ scan: ArchiveScan) throws {
        guard !scan.added.isEmpty else { return }
        let (used, _) = try referencedContent(try readIndex())
        for d in scan.added where !used.contains(d) { try content.delete(d) }
    }

    private func readArchive(_ file: any ByteSource, into scan: ArchiveScan, progress: (any ProgressSink)?) throws {
        let (_, plain) = try Compression.decompressing(file)
        let reader = TarReader(plain)
        while let entry = try reader.next() {
            guard let parts = LayerUnpacker.cleanPath(entry.path) else {
                throw ImageError.unsafeEntry(path: entry.path, reason: "its path climbs above the archive root")
            }
            let name = parts.joined(separator: "/")
            switch entry.kind {
            case .directory:
                continue
            case .symlink:
                let base = parts.dropLast().joined(separator: "/")
                let target = entry.linkTarget.hasPrefix("/") ? entry.linkTarget : (base.isEmpty ? "" : base + "/") + entry.linkTarget
                guard LayerUnpacker.cleanPath(target) != nil else {
                    throw ImageError.unsafeEntry(path: entry.path, reason: "symlink target \"\(entry.linkTarget)\" is outside the archive")
                }
                scan.links[name] = ArchiveScan.clean(target)
            case .hardlink:
                guard LayerUnpacker.cleanPath(entry.linkTarget) != nil else {
                    throw ImageError.unsafeEntry(path: entry.path, reason: "hardlink target \"\(entry.linkTarget)\" is outside the archive")
                }
                scan.links[name] = ArchiveScan.clean(entry.linkTarget)
            case .regular:
                try readMember(entry, name: name, reader: reader, into: scan, progress: progress)
            default:
                throw ImageError.unsupportedEntry(path: entry.path, reason: "an image archive holds only files, directories and links")
            }
        }
    }

    /// One file of the archive: JSON kept in memory (and stored), anything
    /// else stored as a blob.
    private func readMember(_ entry: TarEntry, name: String, reader: TarReader, into scan: ArchiveScan,
                            progress: (any ProgressSink)?) throws {
        let source = TarMemberSource(reader)
        // Named by digest (OCI layout): verified, and skipped when already stored.
        var expected: Digest?
        if name.hasPrefix("blobs/sha256/") {
            expected = try Digest(sha256Hex: String(name.dropFirst("blobs/sha256/".count)))
        }
        if let expected, content.contains(expected) {
            scan.files[name] = expected
            if entry.size <= 16 << 20, let bytes = try? content.read(expected), [UInt8(ascii: "{"), UInt8(ascii: "[")].contains(bytes.first) {
                scan.json[name] = bytes
            }
            return
        }
        let head = try source.read(upTo: min(Int(entry.size), 1))
        let metadataName = name.hasSuffix(".json") || name.hasSuffix("/json") || name.hasSuffix("VERSION")
            || name == "repositories" || name == "oci-layout"
        if (metadataName || head.first == UInt8(ascii: "{") || head.first == UInt8(ascii: "[")) && entry.size <= 16 << 20 {
            let bytes = head + (try source.read(upTo: Int(entry.size) - head.count))
            let digest = try Digest.sha256(of: bytes)
            let existed = content.contains(digest)
            let blob = try content.write(bytes, expected: expected ?? digest)
            if !existed { scan.added.insert(blob.digest) }
            scan.files[name] = blob.digest
            scan.json[name] = bytes
            return
        }
        let existed = expected.map(content.contains) ?? false
        let writer = try content.makeWriter(expected: expected)
        let id = String((expected?.hex ?? name).prefix(12))
        progress?.report(.layer(id: id, status: .loading, current: 0, total: entry.size))
        let counted = ProgressSource(PrefixedSource(prefix: head, rest: source), id: id, total: entry.size,
                                     status: .loading, sink: progress, cancel: nil)
        // Stored only: the layers among the blobs are unpacked once the
        // manifests say which they are, several at once (`registerArchive`).
        try TeeSource(counted) { try writer.write($0) }.drain()
        let blob = try writer.commit()
        if !existed { scan.added.insert(blob.digest) }
        scan.files[name] = blob.digest
        progress?.report(.layer(id: id, status: .loaded, current: entry.size, total: entry.size))
    }

    /// The images the archive describes: through `index.json` (OCI layout,
    /// Docker 25+) when it has one, else through `manifest.json`.
    private func registerArchive(_ scan: ArchiveScan, unpack: UnpackOptions, progress: (any ProgressSink)?) throws -> [LoadedImage] {
        var dockerEntries: [DockerArchiveEntry] = []
        if let bytes = scan.json["manifest.json"] {
            dockerEntries = try CanonicalJSON.decode([DockerArchiveEntry].self, bytes, what: "manifest.json", as: ImageError.malformedArchive)
        }
        var images: [(manifest: [UInt8], names: [String])] = []
        if let bytes = scan.json["index.json"] {
            let index = try CanonicalJSON.decode(OCIIndex.self, bytes, what: "index.json", as: ImageError.malformedArchive)
            for d in index.manifests {
                let manifestBytes = try blobJSON(d.digest, scan, what: "manifest \(d.digest)")
                var bytes = manifestBytes
                var digest = d.digest
                if MediaType.isIndex(d.mediaType) {
                    let nested = try CanonicalJSON.decode(OCIIndex.self, manifestBytes, what: "index \(d.digest)", as: ImageError.malformedArchive)
                    let entry = (try? PlatformSpec.host.select(from: nested)) ?? nested.manifests.first { ($0.platform?.architecture ?? "") != "unknown" }
                    guard let entry else { throw ImageError.malformedArchive("index \(d.digest) lists no image") }
                    digest = entry.digest
                    bytes = try blobJSON(entry.digest, scan, what: "manifest \(entry.digest)")
                }
                let manifest = try CanonicalJSON.decode(OCIManifest.self, bytes, what: "manifest \(digest)", as: ImageError.malformedArchive)
                var names = ImageStore.archiveNames(d.annotations)
                for e in dockerEntries where scan.digest(of: e.Config) == manifest.config.digest { names += e.RepoTags ?? [] }
                // One entry per name (Docker writes them so): one image with every name.
                if let i = images.firstIndex(where: { $0.manifest == bytes }) {
                    images[i].names += names.filter { !images[i].names.contains($0) }
                } else {
                    images.append((bytes, names.reduce(into: []) { if !$0.contains($1) { $0.append($1) } }))
                }
            }
        } else if !dockerEntries.isEmpty {
            for e in dockerEntries {
                guard let configDigest = scan.digest(of: e.Config) else {
                    throw ImageError.malformedArchive("manifest.json names the config \(e.Config), which is not in the archive")
                }
                var layers: [OCIDescriptor] = []
                for l in e.Layers {
                    guard let d = scan.digest(of: l) else {
                        throw ImageError.malformedArchive("manifest.json names the layer \(l), which is not in the archive")
                    }
                    let magic = try FileSource(try content.open(d)).read(upTo: 6)
                    layers.append(OCIDescriptor(mediaType: MediaType.layer(Compression.detect(magic)), digest: d, size: try content.size(of: d)))
                }
                let manifest = OCIManifest(config: OCIDescriptor(mediaType: MediaType.config, digest: configDigest,
                                                                 size: try content.size(of: configDigest)), layers: layers)
                images.append((try CanonicalJSON.encode(manifest), e.RepoTags ?? []))
            }
        } else {
            throw ImageError.malformedArchive("not an image archive: it has neither manifest.json nor index.json")
        }
        guard !images.isEmpty else { throw ImageError.malformedArchive("the archive holds no image") }

        var result: [LoadedImage] = []
        for (bytes, names) in images {
            let manifest = try CanonicalJSON.decode(OCIManifest.self, bytes, what: "manifest", as: ImageError.malformedArchive)
            try ImageStore.validate(manifest, shown: names.first ?? "the archive's image")
            let configBytes = try content.read(manifest.config.digest)
            let config = try OCIImage.decode(configBytes, what: "image config \(manifest.config.digest)", as: ImageError.malformedArchive)
            guard config.rootfs.diffIDs.count == manifest.layers.count else {
                throw ImageError.malformedArchive("image \(manifest.config.digest.hex.prefix(12)): its config lists \(config.rootfs.diffIDs.count) layers, its manifest \(manifest.layers.count)")
            }
            // The layers not yet here are unpacked from their stored blobs, in
            // parallel, each checked against the config's DiffID.
            let chain = try SnapshotStore.chainIDs(config.rootfs.diffIDs)
            if chain.contains(where: { !snapshots.exists($0) }) {
                _ = try fetchLayers(nil, repo: "", layers: manifest.layers, diffIDs: config.rootfs.diffIDs,
                                    width: ImageStore.loadUnpackWidth, unpack: unpack, progress: progress)
            }
            let manifestBlob = try content.write(bytes)
            let id = manifest.config.digest.hex
            var refs: [ImageReference] = []
            for n in names {
                guard let r = try? ImageReference(parsing: n), r.digest == nil else { continue }
                let ref = try ImageStore.taggableReference(r.withDefaultTag().string)
                if !refs.contains(ref) { refs.append(ref) }
            }
            let size = try layerSize(config.rootfs.diffIDs)
            try updateIndex { index in
                var record = index.images[id] ?? ImageIndex.Record(manifest: manifestBlob.digest, size: size, added: Timestamp.now().rfc3339)
                record.manifest = manifestBlob.digest
                index.images[id] = record
                for r in refs { index.references[r.string] = id }
            }
            result.append(LoadedImage(id: id, names: refs.map(\.familiarString)))
        }
        return result
    }

    /// A JSON blob of the archive (read back from the store, verified).
    private func blobJSON(_ digest: Digest, _ scan: ArchiveScan, what: String) throws -> [UInt8] {
        guard scan.files["blobs/sha256/" + digest.hex] != nil || content.contains(digest) else {
            throw ImageError.malformedArchive("\(what) is not in the archive")
        }
        return try content.read(digest)
    }

    /// Image names from an index entry's annotations: containerd's full name,
    /// or an OCI ref.name that is a whole reference (a bare tag names nothing).
    static func archiveNames(_ annotations: [String: String]?) -> [String] {
        if let full = annotations?["io.containerd.image.name"] { return [full] }
        if let ref = annotations?["org.opencontainers.image.ref.name"], ref.contains(":") || ref.contains("/") {
            return [ref]
        }
        return []
    }
}
