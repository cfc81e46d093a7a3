#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// Options of `LayerUnpacker`.
public struct UnpackOptions: Sendable, Equatable {
    /// Create character and block device nodes found in the layer. Off by
    /// default: a layer that holds devices is refused with an error.
    public var allowDevices: Bool
    /// Give entries the uid/gid recorded in the archive (needs CAP_CHOWN).
    public var preserveOwnership: Bool
    /// Read `.wh.` names as the layer's whiteouts (image layers). Off, they
    /// are ordinary names (`hako cp` into a container).
    public var whiteouts: Bool
    /// Into a container with its own user namespace: the archive's owners
    /// (or, without `preserveOwnership`, its root) moved into the container's
    /// slice of host ids; an owner the container has not is refused.
    public var idShift: IDShift?
    /// Nobody else can reach the root while it is unpacked (a snapshot's
    /// temp directory, mode 0700): files are created with their permission
    /// bits at once. Otherwise (a container's tree) a file stays 0600 until
    /// its content, owner and mode are all in place.
    public var privateRoot: Bool

    public init(allowDevices: Bool = false, preserveOwnership: Bool = true, whiteouts: Bool = true, idShift: IDShift? = nil,
                privateRoot: Bool = false) {
        self.allowDevices = allowDevices
        self.preserveOwnership = preserveOwnership
        self.whiteouts = whiteouts
        self.idShift = idShift
        self.privateRoot = privateRoot
    }
}

/// What unpacking one layer produced.
public struct UnpackResult: Sendable, Equatable {
    /// sha256 of the whole uncompressed tar stream (the OCI DiffID).
    public var diffID: Digest
    /// Bytes of the uncompressed tar stream.
    public var uncompressedSize: Int64
    /// Bytes of regular-file content written (what `docker images` calls size).
    public var contentSize: Int64
    /// Compression the stream arrived with.
    public var compression: Compression
    /// Archive entries applied (whiteouts included).
    public var entries: Int
    /// Problems that did not stop the unpack: extended attributes outside
    /// `user.*`, `trusted.*` and `security.capability` that could not be set,
    /// and `trusted.overlay.*` attributes refused from the archive.
    public var warnings: [String]
}

/// Applies one tar layer (plain or gzip) to a directory, the layer's root,
/// as an OverlayFS lower/upper directory.
///
/// Safety, by construction:
/// - every entry's parent directory is opened with `openat2(RESOLVE_BENEATH)`,
///   or walked component by component with `*at` calls: a symlink on the way
///   is followed only while it stays inside the root; one that points out
///   (absolute target, or ".." above the root) is refused, never written through;
/// - the final component is created with `*at` calls relative to that parent
///   and never followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`);
/// - names that climb above the root, non-directories that would replace the
///   root (a symlink named "." or "/"), symlinks that would replace a
///   directory of the same layer, hardlinks to anything outside the layer or
///   missing, and device nodes (unless `allowDevices`) are refused with an
///   error naming the entry. An absolute entry name means the same path inside.
///
/// Whiteouts follow the OCI layer spec in overlay form: `.wh.NAME` becomes a
/// 0/0 character device `NAME`, `.wh..wh..opq` sets `trusted.overlay.opaque=y`
/// on its directory. Both only hide *lower* layers: what this layer itself
/// holds under that name survives, whatever the entry order (a directory of
/// this layer that a whiteout names is made opaque instead).
///
/// The root should be an empty directory: a failed unpack leaves partial
/// content, which the caller removes (snapshots unpack into a temp dir).
public struct LayerUnpacker: Sendable {
    public var options: UnpackOptions

    public init(options: UnpackOptions = UnpackOptions()) {
        self.options = options
    }

    /// Unpacks `source` (gzip detected by its magic; zstd is refused) into `root`.
    /// The DiffID and sizes are computed in the same pass; trailing bytes after
    /// the end-of-archive marker are read too, so they count in the DiffID.
    public func unpack(_ source: any ByteSource, into root: String) throws -> UnpackResult {
        let rootFD = try FileDescriptor.open(root, O_PATH_FLAG | O_DIRECTORY)
        let (compression, plain) = try Compression.decompressing(source)
        let digesting = try DigestingSource(plain)
        let reader = TarReader(digesting)
        let session = UnpackSession(root: rootFD, options: options)
        var entries = 0
        while let entry = try reader.next() {
            do {
                try session.apply(entry, content: reader)
            } catch let e as ImageError {
                throw e
            } catch {
                throw ImageError.entryFailed(path: entry.path, reason: String(describing: error))
            }
            entries += 1
        }
        try session.finish()
        try digesting.drain()
        try source.drain()
        return UnpackResult(diffID: try digesting.finalize(), uncompressedSize: digesting.count,
                            contentSize: session.contentSize, compression: compression,
                            entries: entries, warnings: session.warnings)
    }

    /// openat2 resolve flags: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS.
    static let resolveBeneath: UInt64 = 0x08 | 0x02

    /// Splits an archive path into clean components, relative to the root:
    /// a leading "/" is dropped, "" and "." vanish, ".." removes the previous
    /// component. nil when ".." would climb above the root.
    public static func cleanPath(_ path: String) -> [String]? {
        var parts: [String] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." {
                if parts.isEmpty { return nil }
                parts.removeLast()
                continue
            }
            parts.append(String(component))
        }
        return parts
    }
}
