#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoEngine
import HakoImage
import HakoSystem

/// The build cache: a step's key (the key of the state before it, the step
/// as resolved, the digests of the files it reads) → what it made: the layer
/// (nil for a config-only step) and when. One small JSON file per key under
/// `<root>/build-cache`; an entry whose layer was since removed from the
/// store is a miss.
struct BuildCache {
    struct Entry: Codable, Equatable {
        var layer: AddedLayer?
        var created: String
    }

    let directory: String

    static func key(_ parts: [String]) throws -> String {
        try Digest.sha256(of: parts.map { "\($0.utf8.count):\($0)" }.joined(separator: "\n")).hex
    }

    func lookup(_ key: String) -> Entry? {
        guard let bytes = try? FS.readFile(directory + "/" + key + ".json") else { return nil }
        return try? JSONDecoder().decode(Entry.self, from: Data(bytes))
    }

    /// Best effort: a cache that cannot be written only makes the next build slower.
    func store(_ key: String, _ entry: Entry) {
        guard let bytes = try? JSONEncoder().encode(entry) else { return }
        try? FS.makeDirectories(directory, mode: 0o700)
        try? FS.writeAtomic(directory + "/" + key + ".json", Array(bytes), mode: 0o600, durable: false)
    }

    /// Removes entries: every one with `all`, else those whose layer the
    /// store no longer holds (`stillStored` says). Returns how many went.
    func prune(all: Bool, stillStored: (AddedLayer) -> Bool) -> Int {
        var removed = 0
        for name in (try? FS.list(directory)) ?? [] where name.hasSuffix(".json") {
            let path = directory + "/" + name
            let entry = (try? FS.readFile(path)).flatMap { try? JSONDecoder().decode(Entry.self, from: Data($0)) }
            let stale = entry.map { e in e.layer.map { !stillStored($0) } ?? false } ?? true
            if all || stale, unlink(path) == 0 { removed += 1 }
        }
        FS.removeOrphanedTemporaries(in: directory)
        return removed
    }
}

extension Builder {
    /// `hako builder prune`: the build cache's entries whose layers are gone
    /// (every entry with `all`); the layers themselves are the image store's,
    /// collected with the images that use them. Returns how many went.
    public static func pruneCache(engine: Engine, all: Bool) -> Int {
        let cache = BuildCache(directory: engine.paths.root + "/build-cache")
        return cache.prune(all: all) { engine.images.content.contains($0.descriptor.digest) }
    }
}
