import HakoSystem

/// A layer added on top of an image by `commit` or a build step: its stored
/// (gzip) blob and the DiffID of its uncompressed tar.
public struct AddedLayer: Codable, Sendable, Equatable {
    public var descriptor: OCIDescriptor
    public var diffID: Digest

    public init(descriptor: OCIDescriptor, diffID: Digest) {
        self.descriptor = descriptor
        self.diffID = diffID
    }
}

extension ImageStore {
    /// One directory (an overlay upper directory, or a tree a build step laid
    /// out) as a new layer above the layers `parent` lists (DiffIDs, lowest
    /// first): tar → DiffID → gzip → blob in one pass (whiteouts and opaque
    /// directories in `.wh.` form), then unpacked as the snapshot above them.
    /// `exclude` lists paths left out (the runtime's mount points).
    public func addLayer(from directory: String, above parent: [Digest], exclude: Set<String> = [],
                         unpack: UnpackOptions = UnpackOptions()) throws -> AddedLayer {
        try atBoundary("cannot store a layer") {
            let lock = try beginAddingContent()
            defer { lock.release() }
            return try addLayerLocked(from: directory, above: parent, exclude: exclude, unpack: unpack)
        }
    }

    func addLayerLocked(from directory: String, above parent: [Digest], exclude: Set<String>,
                        unpack: UnpackOptions) throws -> AddedLayer {
        let writer = try content.makeWriter()
        let digesting = try DigestingSink(try GzipSink(writer))
        try TreeArchiver(mode: .diff, exclude: exclude).archive([directory], to: TarWriter(digesting))
        let diffID = try digesting.digest()
        let blob = try writer.commit()
        let chain = try SnapshotStore.chainIDs(parent)
        _ = try snapshots.unpack(FileSource(try content.open(blob.digest)), parent: chain.last,
                                 expectedDiffID: diffID, options: unpack)
        return AddedLayer(descriptor: OCIDescriptor(mediaType: MediaType.layerGzip, digest: blob.digest, size: blob.size),
                          diffID: diffID)
    }

    /// A shared hold on the store's content for the length of a build: the
    /// layers it adds belong to no image until the build registers one, and
    /// garbage collection (`rmi`, `image prune`), which takes the content
    /// lock exclusively, waits until the hold is released.
    public func holdContent() throws -> FileLock {
        try atBoundary("cannot lock the image store") { try contentLock() }
    }

    /// Whether a layer added earlier (a build cache entry's) is still stored,
    /// blob and snapshot, above `parent`.
    public func hasLayer(_ layer: AddedLayer, above parent: [Digest]) -> Bool {
        guard let chain = try? SnapshotStore.chainIDs(parent + [layer.diffID]), let top = chain.last else { return false }
        return snapshots.exists(top) && content.contains(layer.descriptor.digest)
    }

    /// The snapshot directories of a layer chain (DiffIDs, lowest first), lowest first.
    public func layerDirectories(_ diffIDs: [Digest]) throws -> [String] {
        try atBoundary("cannot find layers") { try SnapshotStore.chainIDs(diffIDs).map { snapshots.fsPath($0) } }
    }

    /// Registers an image made of `base`'s layers (none for `scratch`) and
    /// `added` on top, with `config` and `history` (`created` its time), named
    /// by each of `references`. The same inputs give the same image ID.
    public func registerBuilt(base: Image?, added: [AddedLayer], config: ImageConfig, created: String,
                              history: [OCIImage.History], references: [String],
                              platform: PlatformSpec? = nil) throws -> Image {
        try atBoundary("cannot store the built image") {
            let refs = try references.map { try ImageStore.taggableReference($0) }
            var baseLayers: [OCIDescriptor] = []
            var diffIDs: [Digest] = []
            if let base {
                guard !base.isHost else { throw ImageError.notAllowed("the built-in host image cannot be built on") }
                guard let manifestDigest = base.manifestDigest else { throw ImageError.noSuchImage(base.id) }
                let manifest = try CanonicalJSON.decode(OCIManifest.self, try content.read(manifestDigest), what: "manifest of \(base.shortID)")
                baseLayers = manifest.layers.map { l in
                    var d = l
                    if d.mediaType == MediaType.dockerLayerGzip { d.mediaType = MediaType.layerGzip }
                    d.annotations = nil
                    return d
                }
                diffIDs = base.diffIDs
            }
            let lock = try contentLock()
            defer { lock.release() }
            diffIDs += added.map(\.diffID)
            var infos: [SnapshotInfo] = []
            for c in try SnapshotStore.chainIDs(diffIDs) {
                guard let i = try snapshots.info(c) else { throw ImageError.corrupt("snapshot \(c) is missing") }
                infos.append(i)
            }
            let platform = platform ?? base.map { PlatformSpec(os: $0.os, architecture: $0.architecture, variant: $0.variant) } ?? .host
            let image = try register(layers: baseLayers + added.map(\.descriptor), snapshots: infos, config: config,
                                     created: created, history: history, reference: refs.first, platform: platform)
            if refs.count > 1 {
                try updateIndex { index in for r in refs.dropFirst() { index.references[r.string] = image.id } }
                return try resolveImage(image.id)
            }
            return image
        }
    }

    /// The history recorded in an image's config (empty for the host image).
    public func history(of image: Image) throws -> [OCIImage.History] {
        try atBoundary("cannot read the history of \(image.shortID)") { try storedConfig(image)?.history ?? [] }
    }
}
