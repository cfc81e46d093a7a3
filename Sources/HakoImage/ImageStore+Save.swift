#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoSystem

/// The archive formats `save` writes.
public enum ArchiveFormat: String, Sendable, CaseIterable {
    /// Docker 25+'s layout: an OCI image layout (`oci-layout`, `index.json`,
    /// `blobs/sha256/…`) plus the `manifest.json` that every docker-archive
    /// reader (older Docker, podman, skopeo) uses. The default.
    case dockerArchive = "docker-archive"
    /// An OCI image layout only.
    case ociArchive = "oci-archive"
}

extension ImageStore {
    /// `hako save`: writes images (names or IDs) as one archive. Blobs are
    /// written as stored, so manifests and their digests survive a save → load
    /// round trip. A name given is recorded for that image; an ID records none.
    public func save(_ references: [String], format: ArchiveFormat, to sink: any ByteSink) throws {
        var chosen: [(image: Image, names: [ImageReference])] = []
        for r in references {
            let image = try resolve(r)
            let name = (try? ImageReference(parsing: r)).flatMap { ref -> ImageReference? in
                ref.digest == nil && image.references.contains(ref.withDefaultTag().familiarString) ? ref.withDefaultTag() : nil
            }
            if let i = chosen.firstIndex(where: { $0.image.id == image.id }) {
                if let name, !chosen[i].names.contains(name) { chosen[i].names.append(name) }
            } else {
                chosen.append((image, name.map { [$0] } ?? []))
            }
        }
        try atBoundary("cannot save") {
            guard !chosen.isEmpty else { throw ImageError.notAllowed("nothing to save") }
            if let host = chosen.first(where: { $0.image.isHost }) {
                throw ImageError.notAllowed("the built-in host image (\(host.image.shortID)) cannot be saved")
            }
            let tar = TarWriter(sink)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            let epoch = Timestamp(seconds: 0)
            try tar.append(TarEntry(path: "blobs", kind: .directory, mode: 0o755, modified: epoch))
            try tar.append(TarEntry(path: "blobs/sha256", kind: .directory, mode: 0o755, modified: epoch))

            var written: Set<Digest> = []
            var descriptors: [OCIDescriptor] = []
            var dockerEntries: [DockerArchiveEntry] = []
            for (image, names) in chosen {
                guard let manifestDigest = image.manifestDigest else { throw ImageError.noSuchImage(image.id) }
                let manifestBytes = try content.read(manifestDigest)
                let manifest = try CanonicalJSON.decode(OCIManifest.self, manifestBytes, what: "manifest \(manifestDigest)")
                for d in manifest.layers.map(\.digest) + [manifest.config.digest, manifestDigest] where written.insert(d).inserted {
                    let fd = try content.open(d)
                    let size = try content.size(of: d)
                    try tar.append(TarEntry(path: "blobs/sha256/" + d.hex, kind: .regular, size: size, mode: 0o444, modified: epoch))
                    try tar.copyContent(from: fd, buffer: buffer)
                }
                let mediaType = try RegistryClient.classify(manifestBytes, contentType: "", shown: image.shortID)
                let base = OCIDescriptor(mediaType: mediaType, digest: manifestDigest, size: Int64(manifestBytes.count))
                if names.isEmpty {
                    descriptors.append(base)
                } else {
                    for n in names {
                        var d = base
                        d.annotations = ["io.containerd.image.name": n.string, "org.opencontainers.image.ref.name": n.string]
                        descriptors.append(d)
                    }
                }
                dockerEntries.append(DockerArchiveEntry(Config: "blobs/sha256/" + manifest.config.digest.hex,
                                                        RepoTags: names.map(\.string),
                                                        Layers: manifest.layers.map { "blobs/sha256/" + $0.digest.hex }))
            }
            func file(_ name: String, _ bytes: [UInt8]) throws {
                try tar.append(TarEntry(path: name, kind: .regular, size: Int64(bytes.count), mode: 0o644, modified: epoch))
                try tar.writeContent(bytes)
            }
            try file("index.json", try CanonicalJSON.encode(OCIIndex(manifests: descriptors)))
            if format == .dockerArchive { try file("manifest.json", try CanonicalJSON.encode(dockerEntries)) }
            try file("oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
            try tar.finish()
        }
    }
}
