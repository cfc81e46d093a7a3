import COpenSSL
import HakoSystem

/// A content digest, "sha256:<64 lowercase hex>": the name of every blob,
/// layer (DiffID), snapshot (ChainID) and image (config digest) in the store.
///
/// Only sha256 is accepted for now; the algorithm is kept apart from the hex
/// so sha512 (allowed by the OCI spec) can be added without changing users.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public let algorithm: String
    /// The encoded hash: 64 lowercase hex digits for sha256.
    public let hex: String

    /// Parses "sha256:<64 lowercase hex>".
    public init(_ string: String) throws(ImageError) {
        guard let colon = string.firstIndex(of: ":") else { throw .invalidDigest(string) }
        let algorithm = String(string[..<colon])
        let encoded = String(string[string.index(after: colon)...])
        guard algorithm == "sha256", Digest.isSHA256Hex(encoded) else { throw .invalidDigest(string) }
        self.algorithm = algorithm
        self.hex = encoded
    }

    /// A sha256 digest from its 64 hex digits.
    public init(sha256Hex hex: String) throws(ImageError) {
        guard Digest.isSHA256Hex(hex) else { throw .invalidDigest(hex) }
        self.algorithm = "sha256"
        self.hex = hex
    }

    private init(uncheckedSHA256 hex: String) {
        self.algorithm = "sha256"
        self.hex = hex
    }

    /// The sha256 digest of `bytes`.
    public static func sha256(of bytes: [UInt8]) throws -> Digest {
        let h = try SHA256Hasher()
        bytes.withUnsafeBytes { h.update($0) }
        return try h.finalize()
    }

    /// The sha256 digest of a string's UTF-8 bytes.
    public static func sha256(of string: String) throws -> Digest {
        try sha256(of: Array(string.utf8))
    }

    /// Whether `s` is 64 lowercase hex digits.
    public static func isSHA256Hex(_ s: String) -> Bool {
        var count = 0
        for c in s.utf8 {
            guard (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) else { return false }
            count += 1
        }
        return count == 64
    }

    public var string: String { algorithm + ":" + hex }
    public var description: String { string }

    public static func < (a: Digest, b: Digest) -> Bool { a.string < b.string }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        try self.init(s)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(string)
    }

    /// Builds a digest from a finished hash (already known to be valid hex).
    static func fromRawSHA256(_ bytes: [UInt8]) -> Digest {
        Digest(uncheckedSHA256: hexString(bytes))
    }
}

/// Incremental SHA-256 (OpenSSL's SHA-256 functions, not its EVP interface:
/// see hako_sha256_init in COpenSSL/shim.h).
public final class SHA256Hasher {
    private let context: UnsafeMutablePointer<SHA256_CTX>
    private var finished = false

    public init() throws(ImageError) {
        let ctx = UnsafeMutablePointer<SHA256_CTX>.allocate(capacity: 1)
        guard hako_sha256_init(ctx) == 1 else {
            ctx.deallocate()
            throw .corrupt("OpenSSL: cannot initialise SHA-256")
        }
        context = ctx
    }

    deinit { context.deallocate() }

    public func update(_ buffer: UnsafeRawBufferPointer) {
        guard !finished, let base = buffer.baseAddress, buffer.count > 0 else { return }
        // Updating an initialised SHA-256 context cannot fail.
        _ = hako_sha256_update(context, base, buffer.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything given to `update`. Callable once.
    public func finalize() throws(ImageError) -> Digest {
        guard !finished else { throw .corrupt("SHA-256 finalised twice") }
        finished = true
        var out = [UInt8](repeating: 0, count: 32)
        guard hako_sha256_final(&out, context) == 1 else { throw .corrupt("OpenSSL: SHA-256 failed") }
        return Digest.fromRawSHA256(out)
    }
}
