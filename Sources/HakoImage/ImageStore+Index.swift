import HakoSystem

/// `<dataRoot>/images/index.json`: which references name which image, and
/// which images are stored. Written whole and atomically (temp + fsync +
/// rename) under the lock file `<dataRoot>/images/lock`; read without the
/// lock, since a reader always sees a complete old or new file.
struct ImageIndex: Codable, Equatable {
    struct Record: Codable, Equatable {
        /// The image's manifest blob.
        var manifest: Digest
        /// Bytes of file content in all layers.
        var size: Int64
        /// RFC 3339 time the image entered this store.
        var added: String
        /// "docker.io/library/busybox@sha256:…": what the image was pulled
        /// or pushed as (for an image from an index, the index's digest).
        var repoDigests: [String]?
        /// The platform index the image was pulled from, kept for `save` and prune.
        var index: Digest?
    }

    var version = 1
    /// Fully qualified reference ("docker.io/library/busybox:latest") → image ID.
    var references: [String: String] = [:]
    /// Image ID (config digest hex) → record.
    var images: [String: Record] = [:]

    /// The references of an image, as `docker images` shows them.
    func familiarReferences(of id: String) -> [String] {
        references.filter { $0.value == id }.keys.map { full in
            (try? ImageReference(parsing: full))?.familiarString ?? full
        }.sorted()
    }
}

extension ImageStore {
    var indexPath: String { imagesDirectory + "/index.json" }
    var lockPath: String { imagesDirectory + "/lock" }

    func readIndex() throws -> ImageIndex {
        guard FS.exists(indexPath) else { return ImageIndex() }
        let index = try CanonicalJSON.decode(ImageIndex.self, try FS.readFile(indexPath), what: indexPath)
        guard index.version == 1 else { throw ImageError.corrupt("\(indexPath): unknown version \(index.version)") }
        return index
    }

    /// Read-modify-write of the index under the lock: concurrent hako
    /// commands (and tasks) serialise here and never lose each other's changes.
    @discardableResult
    func updateIndex<T>(_ body: (inout ImageIndex) throws -> T) throws -> T {
        let lock = try FileLock.acquire(lockPath)
        defer { lock.release() }
        var index = try readIndex()
        let before = index
        let result = try body(&index)
        if index != before {
            FS.removeOrphanedTemporaries(in: imagesDirectory)  // an index.json.tmp.<pid> of a killed command
            try FS.writeAtomic(indexPath, try CanonicalJSON.encode(index), mode: 0o644, durable: true)
            FileTree.syncDirectory(imagesDirectory)
        }
        return result
    }
}
