import HakoSystem

/// What `commit` records besides the new layer.
public struct CommitOptions: Sendable {
    /// The image config of the new image (the container's settings, before `changes`).
    public var config: ImageConfig
    /// `--change` instructions.
    public var changes: [String]
    public var author: String?
    public var message: String?
    /// The history entry's `created_by` (the container's command, as Docker records it).
    public var createdBy: String

    public init(config: ImageConfig, changes: [String] = [], author: String? = nil, message: String? = nil, createdBy: String = "") {
        self.config = config
        self.changes = changes
        self.author = author
        self.message = message
        self.createdBy = createdBy
    }
}

extension ImageStore {
    /// `hako commit`: a container's upper directory becomes a new layer on
    /// top of its image's layers (overlay whiteouts and opaque directories
    /// written back in `.wh.` form), stored gzip-compressed and unpacked as a
    /// snapshot; `exclude` lists the runtime's mount points left out.
    public func commit(upper: String, base: Image, exclude: Set<String>, options: CommitOptions,
                       reference: String?, unpack: UnpackOptions = UnpackOptions()) throws -> Image {
        try atBoundary("cannot commit") {
            let ref = try reference.map { try ImageStore.taggableReference($0) }
            guard !base.isHost else { throw ImageError.notAllowed("containers of the built-in host image cannot be committed") }
            var config = options.config
            try ConfigChange.apply(options.changes, to: &config)
            guard let manifestDigest = base.manifestDigest else { throw ImageError.noSuchImage(base.id) }
            let baseManifest = try CanonicalJSON.decode(OCIManifest.self, try content.read(manifestDigest), what: "manifest of \(base.shortID)")
            let baseConfig = try storedConfig(base)

            let lock = try beginAddingContent()
            defer { lock.release() }
            let added = try addLayerLocked(from: upper, above: base.diffIDs, exclude: exclude, unpack: unpack)
            let chain = try SnapshotStore.chainIDs(base.diffIDs + [added.diffID])
            let layer = added.descriptor
            var infos: [SnapshotInfo] = []
            for c in chain {
                guard let i = try snapshots.info(c) else { throw ImageError.corrupt("snapshot \(c) of image \(base.shortID) is missing") }
                infos.append(i)
            }
            let layers = baseManifest.layers.map { l -> OCIDescriptor in
                var d = l
                // Same bytes, the OCI name (a manifest does not mix Docker and OCI types).
                if d.mediaType == MediaType.dockerLayerGzip { d.mediaType = MediaType.layerGzip }
                d.annotations = nil
                return d
            } + [layer]
            let created = Timestamp.now().rfc3339
            var history = baseConfig?.history ?? []
            history.append(OCIImage.History(created: created, createdBy: options.createdBy, author: options.author,
                                             comment: options.message))
            let platform = PlatformSpec(os: base.os, architecture: base.architecture, variant: base.variant)
            return try register(layers: layers, snapshots: infos, config: config, created: created, history: history,
                                reference: ref, platform: platform, author: options.author)
        }
    }

    /// `hako export`: the merged file system of `layers` (top first: the
    /// container's upper directory, then its image's layers) as a tar stream.
    public func exportTree(_ layers: [String], to sink: any ByteSink) throws {
        try atBoundary("cannot export") {
            try TreeArchiver(mode: .merged).archive(layers, to: TarWriter(sink))
        }
    }
}
