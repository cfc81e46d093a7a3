#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HakoSystem

/// What `<snapshots>/<chainID-hex>/snapshot.json` records about a layer.
public struct SnapshotInfo: Codable, Sendable, Equatable {
    public var chainID: Digest
    public var diffID: Digest
    /// The chain ID of the layer below; nil for a bottom layer.
    public var parent: Digest?
    /// Bytes of regular-file content in this layer.
    public var size: Int64
    /// Bytes of the uncompressed layer tar.
    public var uncompressedSize: Int64
    /// RFC 3339 time the snapshot was unpacked.
    public var created: String
}

/// Unpacked layers: `<images>/snapshots/<chainID-hex>/fs`, each unpacked once
/// and shared by every image and container whose layer chain reaches it.
///
/// A snapshot is unpacked into `<images>/tmp/snapshot-<random>/fs`, its
/// metadata written beside `fs`, and the whole directory renamed into place:
/// a snapshot directory exists only complete. When two processes unpack the
/// same layer at once, the first rename wins and the other copy is dropped.
public struct SnapshotStore: Sendable {
    public let root: String
    let tempDirectory: String

    /// `images`: the images directory (`<dataRoot>/images`).
    public init(images: String) throws {
        root = images + "/snapshots"
        tempDirectory = images + "/tmp"
        try FS.makeDirectories(root)
        try FS.makeDirectories(tempDirectory, mode: 0o700)
    }

    /// ChainID per the OCI image spec: ChainID(L0) = DiffID(L0),
    /// ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
    public static func chainID(parent: Digest?, diffID: Digest) throws -> Digest {
        guard let parent else { return diffID }
        return try Digest.sha256(of: parent.string + " " + diffID.string)
    }

    /// The chain IDs of a stack of layers given by their DiffIDs, lowest first.
    public static func chainIDs(_ diffIDs: [Digest]) throws -> [Digest] {
        var out: [Digest] = []
        for d in diffIDs { out.append(try chainID(parent: out.last, diffID: d)) }
        return out
    }

    public func directory(_ chainID: Digest) -> String { root + "/" + chainID.hex }

    /// The unpacked layer: an overlay lower directory.
    public func fsPath(_ chainID: Digest) -> String { directory(chainID) + "/fs" }

    public func exists(_ chainID: Digest) -> Bool { FS.exists(directory(chainID) + "/snapshot.json") }

    /// The snapshot's metadata; nil when it does not exist.
    public func info(_ chainID: Digest) throws -> SnapshotInfo? {
        let path = directory(chainID) + "/snapshot.json"
        guard FS.exists(path) else { return nil }
        do {
            return try JSONDecoder().decode(SnapshotInfo.self, from: Data(FS.readFile(path)))
        } catch let e as DecodingError {
            throw ImageError.corrupt("\(path): \(e)")
        }
    }

    /// Unpacks one layer stream as the snapshot above `parent`. The chain ID
    /// comes from the DiffID computed while unpacking; when `expectedDiffID`
    /// is given (a pulled layer, whose config lists it) a mismatch is an error
    /// and nothing is kept. Returns the (possibly pre-existing) snapshot.
    public func unpack(_ source: any ByteSource, parent: Digest?, expectedDiffID: Digest? = nil,
                       options: UnpackOptions = UnpackOptions()) throws -> (SnapshotInfo, UnpackResult) {
        if let parent, !exists(parent) {
            throw ImageError.corrupt("parent snapshot \(parent) does not exist")
        }
        let prepared = try prepare(source, expectedDiffID: expectedDiffID, options: options)
        return (try publish(prepared, parent: parent), prepared.result)
    }

    /// Unpacks a layer into a locked temp directory, not yet a snapshot: layers
    /// of one image are prepared in parallel (each only needs its own tar),
    /// then published bottom-up. The unpacked content is synced to disk
    /// (syncfs) before this returns. Dropped unpublished, the temp dir is removed.
    public func prepare(_ source: any ByteSource, expectedDiffID: Digest? = nil,
                        options: UnpackOptions = UnpackOptions()) throws -> PreparedSnapshot {
        // Each snapshot is a tree of its own: ext4 gives each one fresh inode groups.
        FS.markTopOfHierarchies(tempDirectory)
        let temp = try LockedTempDirectory(in: tempDirectory, prefix: "snapshot-")
        try sys("mkdir", temp.path + "/fs") { mkdir(temp.path + "/fs", 0o755) }
        var options = options
        options.privateRoot = true  // the temp directory is 0700: nobody sees a file before it is complete
        let result = try LayerUnpacker(options: options).unpack(source, into: temp.path + "/fs")
        if let expectedDiffID, expectedDiffID != result.diffID {
            throw ImageError.digestMismatch(blob: "layer \(expectedDiffID) (uncompressed)", expected: expectedDiffID, actual: result.diffID)
        }
        // On disk now, while other layers still unpack (their writeback overlaps
        // this one's); `publish` renames it into place only after this.
        FileTree.syncFilesystem(containing: temp.path)
        return PreparedSnapshot(temp: temp, result: result)
    }

    /// Makes a prepared layer the snapshot above `parent` (whose chain ID
    /// names it). When the snapshot already exists, the copy is dropped.
    public func publish(_ prepared: PreparedSnapshot, parent: Digest?) throws -> SnapshotInfo {
        let result = prepared.result
        let chain = try SnapshotStore.chainID(parent: parent, diffID: result.diffID)
        if let existing = try info(chain) { return existing }
        let temp = prepared.temp.path
        let info = SnapshotInfo(chainID: chain, diffID: result.diffID, parent: parent, size: result.contentSize,
                                uncompressedSize: result.uncompressedSize, created: Timestamp.now().rfc3339)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // The layer's content was synced by `prepare`; the record (fsynced by
        // writeAtomic) and its name are made durable before the rename publishes them.
        try FS.writeAtomic(temp + "/snapshot.json", Array(try encoder.encode(info)))
        FileTree.syncDirectory(temp)
        if rename(temp, directory(chain)) != 0 {
            let e = errno
            guard e == EEXIST || e == ENOTEMPTY, let existing = try self.info(chain) else {
                throw SystemError("rename", directory(chain), errno: e)
            }
            // Another process unpacked the same layer first: use its copy.
            return existing
        }
        prepared.temp.published()
        FileTree.syncDirectory(root)
        return info
    }

    /// Removes a snapshot (for garbage collection once nothing uses it).
    public func remove(_ chainID: Digest) throws {
        // Rename first so a half-removed snapshot is never taken for a complete one;
        // the lock keeps `collectTemporaries` off while this process removes it.
        let lock = open(directory(chainID), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if lock < 0 {
            if errno == ENOENT { return }
            throw SystemError("open", directory(chainID))
        }
        defer { close(lock) }
        flock(lock, LOCK_EX)
        let doomed = tempDirectory + "/" + FileTree.randomName("removing-")
        if rename(directory(chainID), doomed) != 0 {
            if errno == ENOENT { return }
            throw SystemError("rename", directory(chainID))
        }
        try FileTree.remove(path: doomed)
    }

    /// Chain IDs of every snapshot.
    public func list() throws -> [Digest] {
        try FS.list(root).compactMap { try? Digest(sha256Hex: $0) }.sorted()
    }
}

/// A layer unpacked into a temp directory, waiting to be published.
public final class PreparedSnapshot: @unchecked Sendable {
    let temp: LockedTempDirectory
    public let result: UnpackResult

    init(temp: LockedTempDirectory, result: UnpackResult) {
        self.temp = temp
        self.result = result
    }
}

/// A directory in `<images>/tmp` held with an flock while this process works
/// in it, so `collectTemporaries` in another process leaves it alone; removed
/// when dropped, unless it was renamed into place.
final class LockedTempDirectory: @unchecked Sendable {
    let path: String
    private let lock: FileDescriptor
    private var keep = false

    init(in directory: String, prefix: String) throws {
        // A collector may take the new directory between mkdir and flock: then
        // it is gone or not ours any more, and another name is tried.
        for _ in 0..<8 {
            let candidate = directory + "/" + FileTree.randomName(prefix)
            try sys("mkdir", candidate) { mkdir(candidate, 0o700) }
            let fd = try FileDescriptor.open(candidate, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            var mine = stat(), there = stat()
            if flock(fd.rawValue, LOCK_EX | LOCK_NB) == 0, fstat(fd.rawValue, &mine) == 0, lstat(candidate, &there) == 0,
               mine.st_ino == there.st_ino, mine.st_dev == there.st_dev {
                path = candidate
                lock = fd
                return
            }
        }
        throw ImageError.corrupt("cannot create a temporary directory in \(directory)")
    }

    func published() { keep = true }

    deinit {
        if !keep { try? FileTree.remove(path: path) }
    }
}
