#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// Content-addressed blob storage: `<images>/blobs/sha256/<hex>`.
///
/// A blob is written to a temp file in `<images>/tmp/`, hashed on the way,
/// checked against the expected digest (when one is given), fsynced and
/// renamed into place: a blob is never visible until complete and verified.
/// Blobs are immutable, so readers need no lock.
public struct ContentStore: Sendable {
    /// The images directory (`<dataRoot>/images`).
    public let root: String
    public var blobsDirectory: String { root + "/blobs/sha256" }
    public var tempDirectory: String { root + "/tmp" }

    /// Creates the directories if needed.
    public init(root: String) throws {
        self.root = root
        try FS.makeDirectories(root + "/blobs/sha256")
        try FS.makeDirectories(root + "/tmp", mode: 0o700)
    }

    public func path(for digest: Digest) -> String { blobsDirectory + "/" + digest.hex }

    public func contains(_ digest: Digest) -> Bool { FS.exists(path(for: digest)) }

    /// Opens a blob for reading.
    public func open(_ digest: Digest) throws -> FileDescriptor {
        do {
            return try FileDescriptor.open(path(for: digest), O_RDONLY)
        } catch let e as SystemError where e.errno == ENOENT {
            throw ImageError.blobNotFound(digest)
        }
    }

    /// Reads a small blob whole (manifests, configs), verifying its digest.
    public func read(_ digest: Digest, maxSize: Int = 16 << 20) throws -> [UInt8] {
        let fd = try open(digest)
        var st = stat()
        try sys("fstat", path(for: digest)) { fstat(fd.rawValue, &st) }
        guard Int64(st.st_size) <= Int64(maxSize) else {
            throw ImageError.corrupt("blob \(digest) is \(st.st_size) bytes, more than the \(maxSize)-byte limit for metadata")
        }
        let bytes = try fd.readAll()
        let actual = try Digest.sha256(of: bytes)
        guard actual == digest else {
            throw ImageError.digestMismatch(blob: path(for: digest), expected: digest, actual: actual)
        }
        return bytes
    }

    /// Size in bytes of a stored blob.
    public func size(of digest: Digest) throws -> Int64 {
        var st = stat()
        guard lstat(path(for: digest), &st) == 0 else {
            if errno == ENOENT { throw ImageError.blobNotFound(digest) }
            throw SystemError("stat", path(for: digest))
        }
        return Int64(st.st_size)
    }

    /// Stores `bytes`; returns their digest.
    @discardableResult
    public func write(_ bytes: [UInt8], expected: Digest? = nil) throws -> BlobDescriptor {
        let writer = try BlobWriter(store: self, expected: expected)
        try bytes.withUnsafeBytes { try writer.write($0) }
        return try writer.commit()
    }

    /// Streams `source` into the store; returns the digest and size.
    @discardableResult
    public func write(from source: any ByteSource, expected: Digest? = nil) throws -> BlobDescriptor {
        let writer = try BlobWriter(store: self, expected: expected)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = try source.read(into: buffer)
            if n == 0 { break }
            try writer.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return try writer.commit()
    }

    /// A writer for a blob that arrives in pieces (a layer being unpacked).
    public func makeWriter(expected: Digest? = nil) throws -> BlobWriter {
        try BlobWriter(store: self, expected: expected)
    }

    /// Removes a blob (for garbage collection; absent is fine).
    public func delete(_ digest: Digest) throws {
        try FS.unlinkIfPresent(path(for: digest))
    }

    /// Digests of every stored blob.
    public func list() throws -> [Digest] {
        try FS.list(blobsDirectory).compactMap { try? Digest(sha256Hex: $0) }.sorted()
    }
}

/// A digest and size: what manifests record about a blob.
public struct BlobDescriptor: Sendable, Equatable {
    public var digest: Digest
    public var size: Int64
}

/// Writes one blob: bytes go to an unnamed file (O_TMPFILE) in `<images>/tmp`
/// and into SHA-256; `commit` verifies, fsyncs and links it into place. Until
/// then the blob has no name at all: a process killed half-way leaves nothing
/// behind, and no reader can ever see a partial or unverified blob. (A file
/// system without O_TMPFILE gets a locked temp file, collected later.)
public final class BlobWriter {
    private let store: ContentStore
    private let expected: Digest?
    /// The temp file's name, when O_TMPFILE was not available.
    private let tempPath: String?
    private var fd: FileDescriptor?
    /// Set once the blob is linked into place or discarded.
    private var finished = false
    private let hasher: SHA256Hasher
    public private(set) var size: Int64 = 0

    init(store: ContentStore, expected: Digest?) throws {
        self.store = store
        self.expected = expected
        hasher = try SHA256Hasher()
        let anonymous = Glibc.open(store.tempDirectory, HAKO_O_TMPFILE | O_WRONLY | O_CLOEXEC, 0o644)
        if anonymous >= 0 {
            fd = FileDescriptor(anonymous)
            tempPath = nil
        } else {
            let path = store.tempDirectory + "/" + FileTree.randomName("blob-")
            let named = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644)
            // The lock says "being written": `collectTemporaries` leaves it alone.
            flock(named.rawValue, LOCK_EX)
            fd = named
            tempPath = path
        }
    }

    deinit { abort() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let fd else { throw ImageError.corrupt("write to a finished blob") }
        try fd.write(bytes)
        hasher.update(bytes)
        size += Int64(bytes.count)
    }

    /// Verifies and publishes the blob. A digest mismatch discards it and
    /// throws an error naming the expected blob.
    public func commit() throws -> BlobDescriptor {
        guard let fd else { throw ImageError.corrupt("blob committed twice") }
        do {
            let actual = try hasher.finalize()
            if let expected, expected != actual {
                throw ImageError.digestMismatch(blob: expected.string, expected: expected, actual: actual)
            }
            try sys("fsync", "blob \(actual)") { fsync(fd.rawValue) }
            let final = store.path(for: actual)
            if let tempPath {
                try sys("rename", final) { rename(tempPath, final) }
            } else if linkat(AT_FDCWD, "/proc/self/fd/\(fd.rawValue)", AT_FDCWD, final, AT_SYMLINK_FOLLOW) != 0 {
                // Already stored (same content, same name): nothing to add.
                guard errno == EEXIST else { throw SystemError("link", final) }
            }
            fd.close()
            self.fd = nil
            finished = true
            FileTree.syncDirectory(store.blobsDirectory)
            return BlobDescriptor(digest: actual, size: size)
        } catch {
            abort()
            throw error
        }
    }

    /// Discards the blob.
    public func abort() {
        fd?.close()
        fd = nil
        if !finished {
            finished = true
            if let tempPath { unlink(tempPath) }
        }
    }
}

extension ContentStore {
    /// Removes what killed commands left in `<images>/tmp`: snapshots being
    /// unpacked, named temp blobs, snapshots being removed. Whatever a live
    /// process is working on holds an flock and is left alone.
    public func collectTemporaries() {
        for name in (try? FS.list(tempDirectory)) ?? [] {
            let path = tempDirectory + "/" + name
            let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else {
                if errno == ELOOP { unlink(path) }
                continue
            }
            defer { close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            try? FileTree.remove(path: path)
        }
    }
}
