#if canImport(Glibc)
import Glibc
#endif
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

/// Writes one blob: bytes go to a temp file and into SHA-256; `commit`
/// verifies, fsyncs and renames it into place. Dropped without `commit`,
/// the temp file is removed.
public final class BlobWriter {
    private let store: ContentStore
    private let expected: Digest?
    private let tempPath: String
    private var fd: FileDescriptor?
    /// Set once the blob is renamed into place or discarded.
    private var finished = false
    private let hasher: SHA256Hasher
    public private(set) var size: Int64 = 0

    init(store: ContentStore, expected: Digest?) throws {
        self.store = store
        self.expected = expected
        hasher = try SHA256Hasher()
        tempPath = store.tempDirectory + "/" + FileTree.randomName("blob-")
        fd = try FileDescriptor.open(tempPath, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644)
    }

    deinit { abort() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let fd else { throw ImageError.corrupt("write to a finished blob") }
        try fd.write(bytes)
        hasher.update(bytes)
        size += Int64(bytes.count)
    }

    /// Verifies and publishes the blob. A digest mismatch removes the temp
    /// file and throws an error naming the expected blob.
    public func commit() throws -> BlobDescriptor {
        guard let fd else { throw ImageError.corrupt("blob committed twice") }
        do {
            let actual = try hasher.finalize()
            if let expected, expected != actual {
                throw ImageError.digestMismatch(blob: expected.string, expected: expected, actual: actual)
            }
            try sys("fsync", tempPath) { fsync(fd.rawValue) }
            fd.close()
            self.fd = nil
            let final = store.path(for: actual)
            try sys("rename", final) { rename(tempPath, final) }
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
            unlink(tempPath)
        }
    }
}
