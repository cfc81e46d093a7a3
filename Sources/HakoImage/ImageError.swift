import HakoSystem

/// Errors of the image layer. Every case names what it is about (a blob, an
/// archive entry, a reference) so the message is useful on its own; the
/// public `ImageStore` API turns them into `HakoError` at its boundary.
public enum ImageError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A string that is not a valid "sha256:<64 hex>" digest.
    case invalidDigest(String)
    /// A blob whose content does not hash to the digest it was announced with.
    case digestMismatch(blob: String, expected: Digest, actual: Digest)
    /// A blob that is not in the content store.
    case blobNotFound(Digest)
    /// A tar or compressed stream that cannot be read (bad header, checksum, truncation).
    case malformedArchive(String)
    /// A compression format hako does not decode (zstd, xz, bzip2).
    case unsupportedCompression(String)
    /// An archive entry refused for safety (escape attempts, devices, bad whiteouts).
    case unsafeEntry(path: String, reason: String)
    /// An archive entry of a kind hako does not handle.
    case unsupportedEntry(path: String, reason: String)
    /// Applying an entry failed in the kernel.
    case entryFailed(path: String, reason: String)
    /// A reference (name, tag, digest) that breaks Docker's grammar.
    case invalidReference(String, reason: String)
    /// No image answers to this reference or ID.
    case noSuchImage(String)
    /// An ID prefix that matches more than one image.
    case ambiguousImage(String)
    /// Something stored on disk is damaged or inconsistent.
    case corrupt(String)
    /// The request is valid but not allowed (e.g. tagging the built-in host image).
    case notAllowed(String)
    /// An image index with no entry for the platform asked for (Docker answers 404 too).
    case noPlatform(String)
    /// A `--change` (commit, import) that is not a Dockerfile instruction hako applies.
    case invalidChange(String)
    /// A registry could not be reached, refused, or answered something unusable.
    case registry(String)
    /// A manifest, index or config that is not valid.
    case invalidManifest(String)
    /// An image is used by containers and cannot be removed without force.
    case inUse(String)
    /// A layer that cannot be unpacked (the reason names the entry).
    case layer(Digest, String)

    public var description: String {
        switch self {
        case .invalidDigest(let s): return "invalid digest \"\(s)\": expected sha256:<64 lowercase hex digits>"
        case .digestMismatch(let blob, let expected, let actual):
            return "blob \(blob): content does not match its digest (expected \(expected), got \(actual))"
        case .blobNotFound(let d): return "blob \(d) not found in the content store"
        case .malformedArchive(let s): return "malformed archive: \(s)"
        case .unsupportedCompression(let s): return s
        case .unsafeEntry(let path, let reason): return "refusing archive entry \"\(path)\": \(reason)"
        case .unsupportedEntry(let path, let reason): return "unsupported archive entry \"\(path)\": \(reason)"
        case .entryFailed(let path, let reason): return "cannot apply archive entry \"\(path)\": \(reason)"
        case .invalidReference(let s, let reason): return "invalid reference format \"\(s)\": \(reason)"
        case .noSuchImage(let s): return "no such image: \(s)"
        case .ambiguousImage(let s): return "image ID prefix \(s) matches more than one image"
        case .corrupt(let s): return "image store damaged: \(s)"
        case .notAllowed(let s), .invalidChange(let s): return s
        case .noPlatform(let s): return s
        case .registry(let s): return s
        case .invalidManifest(let s): return s
        case .inUse(let s): return s
        case .layer(let d, let reason): return "layer \(d): \(reason)"
        }
    }

    /// What callers branch on (HakoSystem's one mapping to exit codes, protocol codes, HTTP statuses).
    public var kind: HakoError.Kind {
        switch self {
        case .noSuchImage(let s): return .notFound(.image, s)
        case .blobNotFound(let d): return .notFound(.file, d.description)
        case .invalidDigest: return .invalidArgument("digest")
        case .invalidReference: return .invalidArgument("reference")
        case .ambiguousImage: return .invalidArgument("image")
        case .notAllowed: return .permissionDenied
        case .noPlatform(let s): return .notFound(.image, s)
        case .invalidChange: return .invalidArgument("--change")
        case .malformedArchive, .unsafeEntry, .unsupportedEntry, .unsupportedCompression, .invalidManifest: return .invalidArgument("archive")
        case .inUse: return .conflict(.inUse(.image, "", by: []))
        case .digestMismatch, .entryFailed, .corrupt, .registry, .layer:
            return .failed
        }
    }

    /// The public form of this error.
    public var hakoError: HakoError { HakoError(kind, description) }
}

extension ImageError: KindedError {}

/// Runs `body` and converts whatever it throws into a `HakoError`, the one
/// public error type: image errors keep their message, system errors become
/// the cause of a message that says what was being done.
func atBoundary<T>(_ doing: String, _ body: () throws -> T) throws(HakoError) -> T {
    do {
        return try body()
    } catch let e as HakoError {
        throw e
    } catch let e as ImageError {
        throw e.hakoError
    } catch {
        throw HakoError(.failed, doing, cause: error)
    }
}
