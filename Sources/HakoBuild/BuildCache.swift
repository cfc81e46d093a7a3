import FoundationEssentials
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
}
