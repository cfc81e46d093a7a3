#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// Short names for snapshot directories, `<images>/l/<12+ hex>` →
/// `../snapshots/<chainID>/fs` (Docker's overlay2 does the same): the
/// kernel takes at most a page of mount options, and sixty layers named by
/// absolute path do not fit. The container's init chdirs to `l/` and names
/// its lower layers by these links.
extension SnapshotStore {
    public var linksDirectory: String { String(root.dropLast("/snapshots".count)) + "/l" }

    /// The snapshot a layer directory (`…/snapshots/<hex>/fs`) is, if it is one.
    func chainID(ofLayerDirectory dir: String) -> Digest? {
        guard dir.hasPrefix(root + "/"), dir.hasSuffix("/fs") else { return nil }
        return try? Digest(sha256Hex: String(dir.dropFirst(root.count + 1).dropLast(3)))
    }

    /// The short link name for a layer directory (created when missing), or
    /// nil when the directory is not a snapshot.
    public func shortLink(forLayerDirectory dir: String) throws -> String? {
        guard let chain = chainID(ofLayerDirectory: dir) else { return nil }
        let target = "../snapshots/" + chain.hex + "/fs"
        try FS.makeDirectories(linksDirectory, mode: 0o700)
        // The shortest prefix of the chain ID that is free or already ours.
        var length = 12
        while length <= 64 {
            let name = String(chain.hex.prefix(length))
            let path = linksDirectory + "/" + name
            if let existing = FS.readLink(path) {
                if existing == target { return name }
            } else if symlink(target, path) == 0 {
                return name
            } else if errno == EEXIST {
                continue  // made by someone else just now: look again
            } else {
                throw SystemError("symlink", path)
            }
            length += 4
        }
        throw ImageError.corrupt("no free short name for snapshot \(chain) in \(linksDirectory)")
    }

    /// Removes links whose snapshot is gone.
    func removeDanglingLinks() throws {
        for name in try FS.list(linksDirectory) {
            let path = linksDirectory + "/" + name
            guard let target = FS.readLink(path) else { continue }
            if !FS.exists(linksDirectory + "/" + target) { try FS.unlinkIfPresent(path) }
        }
    }
}
