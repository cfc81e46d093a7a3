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

extension ImageIndex {
    /// The index as its `Decodable` conformance reads it (the same fields
    /// required, unknown ones ignored), through HakoSystem's JSON reader:
    /// every command that resolves an image reads this file, and Foundation's
    /// decoder spent ~1 M instructions on type metadata for its few hundred
    /// bytes, a sixth of a `hako run`'s CLI.
    init(json bytes: [UInt8], what: String) throws {
        func bad(_ why: String) -> ImageError { .corrupt("\(what) is not valid: \(why)") }
        let root: JSON
        do { root = try JSON.parse(bytes) } catch { throw ImageError.corrupt("\(what) is not valid JSON") }
        guard root.members != nil else { throw bad("not an object") }
        func field(_ o: JSON, _ key: String, at path: String) throws -> JSON {
            guard let v = o[key] else { throw bad("missing field \"\(key)\"" + (path.isEmpty ? "" : " at \(path)")) }
            return v
        }
        func string(_ v: JSON, at path: String) throws -> String {
            guard let s = v.string else { throw bad("expected a string at \(path)") }
            return s
        }
        func digest(_ v: JSON, at path: String) throws -> Digest {
            let s = try string(v, at: path)
            do { return try Digest(s) } catch { throw bad("\(error) at \(path)") }
        }
        guard let version = try field(root, "version", at: "").int64.flatMap({ Int(exactly: $0) }) else { throw bad("expected an integer at version") }
        self.version = version
        guard let refs = try field(root, "references", at: "").members else { throw bad("expected an object at references") }
        references = [:]
        for (k, v) in refs { references[k] = try string(v, at: "references.\(k)") }
        guard let images = try field(root, "images", at: "").members else { throw bad("expected an object at images") }
        self.images = [:]
        for (id, r) in images {
            let at = "images.\(id)"
            guard r.members != nil else { throw bad("expected an object at \(at)") }
            guard let size = try field(r, "size", at: at).int64 else { throw bad("expected an integer at \(at).size") }
            var record = Record(manifest: try digest(try field(r, "manifest", at: at), at: at + ".manifest"), size: size,
                                added: try string(try field(r, "added", at: at), at: at + ".added"))
            if let v = r["repoDigests"], !v.isNull {
                guard let a = v.array else { throw bad("expected an array at \(at).repoDigests") }
                record.repoDigests = try a.enumerated().map { try string($1, at: "\(at).repoDigests[\($0)]") }
            }
            if let v = r["index"], !v.isNull { record.index = try digest(v, at: at + ".index") }
            self.images[id] = record
        }
    }
}

extension ImageStore {
    var indexPath: String { imagesDirectory + "/index.json" }
    var lockPath: String { imagesDirectory + "/lock" }

    func readIndex() throws -> ImageIndex {
        guard FS.exists(indexPath) else { return ImageIndex() }
        let index = try ImageIndex(json: try FS.readFile(indexPath), what: indexPath)
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
