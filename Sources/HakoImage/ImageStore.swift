import HakoSystem

/// The local image store under `<dataRoot>/images`:
///
///     images/
///       blobs/sha256/<hex>         content store: layer tars, configs, manifests
///       snapshots/<chainID-hex>/   unpacked layers
///         fs/                      the overlay lower directory
///         snapshot.json            diffID, parent chainID, sizes
///       tmp/                       blobs and snapshots being written
///       index.json                 references → image IDs, image records
///       lock                       serialises index updates
///
/// Every public method throws `HakoError` only, with a one-line message.
public final class ImageStore: Sendable {
    public let dataRoot: String
    public let imagesDirectory: String
    public let content: ContentStore
    public let snapshots: SnapshotStore

    public init(dataRoot: String) throws {
        let root = FS.absolute(dataRoot)
        self.dataRoot = root
        imagesDirectory = root + "/images"
        (content, snapshots) = try atBoundary("cannot prepare the image store in \(root)/images") {
            try FS.makeDirectories(root + "/images", mode: 0o700)
            return (try ContentStore(root: root + "/images"), try SnapshotStore(images: root + "/images"))
        }
    }

    // MARK: lookup

    /// Finds an image by "name", "name:tag", "name@sha256:…", a full or
    /// unique-prefix image ID, or "sha256:<id or prefix>". "host" is the
    /// built-in host image. Names are tried before ID prefixes (as Docker does).
    public func resolve(_ reference: String) throws -> Image {
        try atBoundary("cannot look up image \(reference)") { try resolveImage(reference) }
    }

    /// Like `resolve`, but nil when no image answers to `reference` (other
    /// problems, such as a malformed reference, still throw).
    public func find(_ reference: String) throws -> Image? {
        try atBoundary("cannot look up image \(reference)") {
            do { return try resolveImage(reference) } catch ImageError.noSuchImage { return nil }
        }
    }

    func resolveImage(_ reference: String) throws -> Image {
        let parsed = Result { () throws(ImageError) in try ImageReference(parsing: reference) }
        if case .success(let ref) = parsed, ImageStore.isHostReference(ref) { return ImageStore.hostImage }
        let index = try readIndex()
        let found: Image
        if reference.hasPrefix("sha256:") {
            let prefix = String(reference.dropFirst("sha256:".count))
            guard ImageStore.isHexPrefix(prefix) else {
                throw ImageError.invalidReference(reference, reason: "invalid image ID")
            }
            found = try image(byIDPrefix: prefix, index: index, shown: reference)
        } else if case .success(let ref) = parsed, let id = lookup(ref, in: index) {
            found = try image(id: id, index: index)
        } else if ImageStore.isHexPrefix(reference) {
            found = try image(byIDPrefix: reference, index: index, shown: reference)
        } else if case .failure(let error) = parsed {
            throw error
        } else {
            throw ImageError.noSuchImage(reference)
        }
        for dir in found.layerDirs where !FS.isDirectory(dir) {
            throw ImageError.corrupt("image \(found.shortID): layer directory \(dir) is missing")
        }
        return found
    }

    /// The image ID a parsed reference names in the index, if any.
    private func lookup(_ ref: ImageReference, in index: ImageIndex) -> String? {
        guard let digest = ref.digest else { return index.references[ref.withDefaultTag().string] }
        // name@digest: the image pulled (or pushed) as that, or with that
        // manifest and known under that repository.
        let wanted = ref.name + "@" + digest.string
        if let hit = index.images.first(where: { $0.value.repoDigests?.contains(wanted) == true }) { return hit.key }
        return index.images.first { id, record in
            record.manifest == digest && index.references.contains { $0.value == id && $0.key.hasPrefix(ref.name + ":") }
        }?.key
    }

    /// Every stored image, newest first, then the built-in host image.
    public func list() throws -> [Image] {
        try atBoundary("cannot list images") {
            let index = try readIndex()
            let stored = try index.images.keys.map { try image(id: $0, index: index) }
            return stored.sorted { a, b in
                let ta = a.created ?? Timestamp(seconds: .min), tb = b.created ?? Timestamp(seconds: .min)
                return ta != tb ? ta > tb : a.id < b.id
            } + [ImageStore.hostImage]
        }
    }

    /// Gives the image `source` (anything `resolve` accepts) the name
    /// `target` ("name" or "name:tag"); the name moves off any other image.
    public func tag(_ source: String, _ target: String) throws {
        let image = try resolve(source)
        try atBoundary("cannot tag \(source) as \(target)") {
            let ref = try ImageStore.taggableReference(target)
            guard !image.isHost else { throw ImageError.notAllowed("the built-in host image cannot be tagged") }
            try updateIndex { index in
                guard index.images[image.id] != nil else { throw ImageError.noSuchImage(source) }
                index.references[ref.string] = image.id
            }
        }
    }

    // MARK: loading

    static func isHexPrefix(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    private func image(byIDPrefix prefix: String, index: ImageIndex, shown: String) throws -> Image {
        var ids = index.images.keys.filter { $0.hasPrefix(prefix) }
        if ImageStore.hostImageID.hasPrefix(prefix) { ids.append(ImageStore.hostImageID) }
        guard ids.count <= 1 else { throw ImageError.ambiguousImage(prefix) }
        guard let id = ids.first else { throw ImageError.noSuchImage(shown) }
        return id == ImageStore.hostImageID ? ImageStore.hostImage : try image(id: id, index: index)
    }

    /// Builds an `Image` from its config blob and index record.
    func image(id: String, index: ImageIndex) throws -> Image {
        guard let record = index.images[id] else { throw ImageError.noSuchImage(id) }
        let configDigest = try Digest(sha256Hex: id)
        let oci = try OCIImage.decode(try content.read(configDigest), what: "image config \(id)")
        let chain = try SnapshotStore.chainIDs(oci.rootfs.diffIDs)
        return Image(id: id, references: index.familiarReferences(of: id), created: oci.created.flatMap(parseRFC3339),
                     size: record.size, architecture: oci.architecture, os: oci.os, variant: oci.variant,
                     config: oci.config ?? ImageConfig(), layerDirs: chain.map { snapshots.fsPath($0) },
                     diffIDs: oci.rootfs.diffIDs, manifestDigest: record.manifest,
                     repoDigests: (record.repoDigests ?? []).map { full in
                         (try? ImageReference(parsing: full))?.familiarString ?? full
                     })
    }
}
