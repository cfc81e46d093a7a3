#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// What `rmi` and `image prune` did.
public struct RemovalReport: Sendable, Equatable {
    /// References removed ("busybox:latest").
    public var untagged: [String] = []
    /// Images removed (IDs).
    public var deleted: [String] = []
    /// Bytes of blobs and snapshots freed by the garbage collection.
    public var reclaimed: Int64 = 0

    public init() {}
}

extension ImageStore {
    /// `hako rmi REF`: removes a name, or the image when it was its last name
    /// (or `reference` is its ID). `users` gives the containers that use an
    /// image (by ID): such an image keeps its content, and is only untagged
    /// or dropped from the index with `force`. Content no longer referenced is
    /// collected; `keep` is every layer directory containers still stack.
    public func remove(_ reference: String, force: Bool, users: (String) -> [String], keep: Set<String>) throws -> RemovalReport {
        let image = try resolve(reference)
        return try atBoundary("cannot remove image \(reference)") {
            guard !image.isHost else { throw ImageError.notAllowed("the built-in host image cannot be removed") }
            var report = RemovalReport()
            let parsed = try? ImageReference(parsing: reference)
            let byName = parsed.map { ref in image.references.contains(ref.withDefaultTag().familiarString) && ref.digest == nil } ?? false
            let usedBy = users(image.id)
            try updateIndex { index in
                let names = index.references.filter { $0.value == image.id }.map(\.key).sorted()
                if byName, let ref = parsed?.withDefaultTag(), names.count > 1 {
                    // One of several names: just that name goes.
                    index.references[ref.string] = nil
                    report.untagged.append(ref.familiarString)
                    return
                }
                if !usedBy.isEmpty && !force {
                    let what = byName ? "repository reference \"\(reference)\"" : "image \(image.shortID)"
                    throw ImageError.inUse("conflict: unable to remove \(what) (must force) - container \(usedBy[0].prefix(12)) is using its referenced image \(image.shortID)")
                }
                if !byName && names.count > 1 && !force {
                    throw ImageError.inUse("conflict: unable to delete \(image.shortID) (must be forced) - image is referenced in multiple repositories")
                }
                for name in names {
                    index.references[name] = nil
                    report.untagged.append((try? ImageReference(parsing: name))?.familiarString ?? name)
                }
                index.images[image.id] = nil
                report.deleted.append(image.id)
            }
            if !report.deleted.isEmpty { report.reclaimed = try collectGarbage(keep: keep) }
            return report
        }
    }

    /// `hako image prune [-a]`: removes images no container uses (with `all`)
    /// or only those that have no name, then every blob and snapshot nothing
    /// references.
    public func prune(all: Bool, users: (String) -> [String], keep: Set<String>) throws -> RemovalReport {
        try atBoundary("cannot prune images") {
            var report = RemovalReport()
            try updateIndex { index in
                for id in index.images.keys.sorted() where users(id).isEmpty {
                    let names = index.references.filter { $0.value == id }.map(\.key).sorted()
                    guard all || names.isEmpty else { continue }
                    for name in names {
                        index.references[name] = nil
                        report.untagged.append((try? ImageReference(parsing: name))?.familiarString ?? name)
                    }
                    index.images[id] = nil
                    report.deleted.append(id)
                }
            }
            report.reclaimed = try collectGarbage(keep: keep)
            return report
        }
    }

    /// Every blob and snapshot some indexed image reaches.
    func referencedContent(_ index: ImageIndex) throws -> (blobs: Set<Digest>, snapshots: Set<Digest>) {
        var blobs: Set<Digest> = []
        var chains: Set<Digest> = []
        for (id, record) in index.images {
            blobs.insert(record.manifest)
            if let i = record.index { blobs.insert(i) }
            let config = try Digest(sha256Hex: id)
            blobs.insert(config)
            // An image whose manifest or config cannot be read stops the collection:
            // what it references is unknown, and nothing referenced may go.
            let manifest = try CanonicalJSON.decode(OCIManifest.self, try content.read(record.manifest), what: "manifest of image \(id)")
            blobs.insert(manifest.config.digest)
            for l in manifest.layers { blobs.insert(l.digest) }
            let oci = try OCIImage.decode(try content.read(config), what: "config of image \(id)")
            for c in try SnapshotStore.chainIDs(oci.rootfs.diffIDs) { chains.insert(c) }
        }
        return (blobs, chains)
    }

    /// Removes every blob and snapshot that no indexed image and no layer
    /// directory in `keep` (what containers stack) references; returns the
    /// bytes freed. Runs under the exclusive content lock, so content a pull,
    /// load or commit is still adding is never taken.
    public func collectGarbage(keep: Set<String>) throws -> Int64 {
        let lock = try contentLock(exclusive: true)
        defer { lock.release() }
        content.collectTemporaries()
        let index = try readIndex()
        var (blobs, chains) = try referencedContent(index)
        // A snapshot a container uses keeps its parents too.
        for dir in keep {
            guard dir.hasPrefix(snapshots.root + "/"), dir.hasSuffix("/fs") else { continue }
            let hex = String(dir.dropFirst(snapshots.root.count + 1).dropLast(3))
            var next = try? Digest(sha256Hex: hex)
            var steps = 0
            while let c = next, steps < 1000 {
                chains.insert(c)
                next = (try? snapshots.info(c))??.parent
                steps += 1
            }
        }
        var freed: Int64 = 0
        for digest in try content.list() where !blobs.contains(digest) {
            freed += (try? content.size(of: digest)) ?? 0
            try content.delete(digest)
        }
        for chain in try snapshots.list() where !chains.contains(chain) {
            freed += (try? snapshots.info(chain))??.size ?? 0
            try snapshots.remove(chain)
        }
        blobs.removeAll()
        try snapshots.removeDanglingLinks()
        return freed
    }
}
