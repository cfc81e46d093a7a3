import HakoSystem

extension ImageStore {
    /// `hako import TARBALL [NAME]`: makes a one-layer image from a root
    /// file-system tar (plain or gzip; `path` "-" reads stdin).
    ///
    /// One pass over the input: the bytes are stored as the layer blob while
    /// they are decompressed, hashed (DiffID) and unpacked into a snapshot.
    /// `config` gives the image's runtime defaults (none by default, as
    /// `docker import`).
    public func importRootfs(from path: String, reference: String?, config: ImageConfig? = nil,
                             unpack: UnpackOptions = UnpackOptions()) throws -> Image {
        try atBoundary("cannot import \(path)") {
            let ref = try reference.map { try ImageStore.taggableReference($0) }
            let source = try FileSource.open(path)
            // Shared with other writers; keeps `image prune` from taking the blob before it is indexed.
            let lock = try beginAddingContent()
            defer { lock.release() }
            let writer = try content.makeWriter()
            let tee = TeeSource(source) { try writer.write($0) }
            let (snapshot, result) = try snapshots.unpack(tee, parent: nil, options: unpack)
            let blob = try writer.commit()
            let layer = OCIDescriptor(mediaType: MediaType.layer(result.compression), digest: blob.digest, size: blob.size)
            let created = Timestamp.now().rfc3339
            let history = OCIImage.History(created: created, createdBy: "hako import",
                                           comment: "imported from \(path == "-" ? "stdin" : path)")
            return try register(layers: [layer], snapshots: [snapshot], config: config ?? ImageConfig(),
                                created: created, history: [history], reference: ref)
        }
    }

    /// Stores an image whose layers are already blobs and snapshots: writes
    /// its config and manifest blobs, records it in the index and, when
    /// given, points `reference` at it. (The common tail of import, and later
    /// of pull, load and commit.)
    func register(layers: [OCIDescriptor], snapshots infos: [SnapshotInfo], config: ImageConfig,
                  created: String, history: [OCIImage.History], reference: ImageReference?,
                  platform: PlatformSpec = .host, author: String? = nil) throws -> Image {
        var oci = OCIImage(created: created, architecture: platform.architecture, os: platform.os,
                           variant: platform.architecture == "amd64" ? nil : platform.variant, config: config,
                           diffIDs: infos.map(\.diffID), history: history)
        oci.author = author
        let configBytes = try CanonicalJSON.encode(oci)
        let configBlob = try content.write(configBytes)
        let manifest = OCIManifest(config: OCIDescriptor(mediaType: MediaType.config, digest: configBlob.digest,
                                                         size: configBlob.size), layers: layers)
        let manifestBlob = try content.write(try CanonicalJSON.encode(manifest))
        let id = configBlob.digest.hex
        let size = infos.reduce(Int64(0)) { $0 + $1.size }
        return try updateIndex { index in
            if index.images[id] == nil {
                index.images[id] = ImageIndex.Record(manifest: manifestBlob.digest, size: size, added: Timestamp.now().rfc3339)
            }
            if let reference { index.references[reference.string] = id }
            return try image(id: id, index: index)
        }
    }

    /// A reference an image can be stored under: no digest, not "host", tag defaulted.
    static func taggableReference(_ string: String) throws -> ImageReference {
        let ref = try ImageReference(parsing: string)
        guard ref.digest == nil else {
            throw ImageError.invalidReference(string, reason: "an image name cannot contain a digest")
        }
        guard !isHostReference(ref) else {
            throw ImageError.notAllowed("the name \"host\" is reserved for the built-in host image")
        }
        return ref.withDefaultTag()
    }
}
