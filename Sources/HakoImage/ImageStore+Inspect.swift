import HakoSystem

/// `hako image inspect`: an image as Docker describes it (its field names).
public struct ImageInspect: Codable, Sendable, Equatable {
    public struct RootFS: Codable, Sendable, Equatable {
        public var `Type`: String
        public var Layers: [String]
    }
    public var Id: String
    public var RepoTags: [String]
    public var RepoDigests: [String]
    public var Created: String?
    public var Author: String?
    public var Comment: String?
    public var Architecture: String
    public var Variant: String?
    public var Os: String
    public var Size: Int64
    public var Config: ImageConfig
    public var RootFS: RootFS
    /// The stored manifest's digest (hako's own addition).
    public var ManifestDigest: String?
}

/// One row of `hako history`: a history entry and the layer it made, if any.
public struct HistoryEntry: Codable, Sendable, Equatable {
    /// The image ID for the top entry, "<missing>" for the others (as Docker shows them).
    public var id: String
    public var created: String?
    public var createdBy: String
    public var comment: String
    /// Bytes of content of the layer the step made; 0 for steps without a layer.
    public var size: Int64
    public var emptyLayer: Bool
}

extension ImageStore {
    /// The config of an image as stored.
    func storedConfig(_ image: Image) throws -> OCIImage? {
        guard !image.isHost else { return nil }
        return try OCIImage.decode(try content.read(try Digest(sha256Hex: image.id)), what: "image config \(image.id)")
    }

    public func inspect(_ reference: String) throws -> ImageInspect {
        let image = try resolve(reference)
        return try atBoundary("cannot inspect image \(reference)") {
            let config = try storedConfig(image)
            return ImageInspect(Id: "sha256:" + image.id, RepoTags: image.references, RepoDigests: image.repoDigests,
                                Created: config?.created, Author: config?.author,
                                Comment: config?.history?.last?.comment, Architecture: image.architecture,
                                Variant: image.variant, Os: image.os, Size: image.size, Config: image.config,
                                RootFS: ImageInspect.RootFS(Type: "layers", Layers: image.diffIDs.map(\.string)),
                                ManifestDigest: image.manifestDigest?.string)
        }
    }

    /// `hako history`: the steps that made the image, newest first. Entries
    /// without history (an image made by other tools) get one row per layer.
    public func history(_ reference: String) throws -> [HistoryEntry] {
        let image = try resolve(reference)
        return try atBoundary("cannot show the history of \(reference)") {
            guard let config = try storedConfig(image) else { return [] }
            let chain = try SnapshotStore.chainIDs(config.rootfs.diffIDs)
            var sizes = try chain.map { try snapshots.info($0)?.size ?? 0 }
            var rows: [HistoryEntry] = []
            let steps = config.history ?? []
            if steps.isEmpty {
                rows = sizes.map { HistoryEntry(id: "<missing>", created: config.created, createdBy: "", comment: "", size: $0, emptyLayer: false) }
            } else {
                for step in steps {
                    let empty = step.emptyLayer ?? false
                    let size = empty || sizes.isEmpty ? 0 : sizes.removeFirst()
                    rows.append(HistoryEntry(id: "<missing>", created: step.created, createdBy: step.createdBy ?? "",
                                             comment: step.comment ?? "", size: size, emptyLayer: empty))
                }
            }
            rows.reverse()
            if !rows.isEmpty { rows[0].id = image.id }
            return rows
        }
    }
}
