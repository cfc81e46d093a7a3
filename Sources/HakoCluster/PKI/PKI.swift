#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import HakoSystem
import HakoTransport

/// The last OpenSSL errors as one line (and the queue emptied).
func openSSLError(_ what: String) -> ClusterError {
    var parts: [String] = []
    while true {
        let e = ERR_get_error()
        if e == 0 { break }
        var buf = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(e, &buf, buf.count)
        parts.append(cString(buf))
    }
    return .security(parts.isEmpty ? what : "\(what): \(parts.joined(separator: "; "))")
}

extension PrivateKey {
    /// A new ECDSA P-256 key.
    public static func generate() throws(ClusterError) -> PrivateKey {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nil) else { throw openSSLError("cannot generate a key") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(ctx) == 1,
              EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1,
              EVP_PKEY_keygen(ctx, &key) == 1, let key else { throw openSSLError("cannot generate a key") }
        return PrivateKey(owning: key)
    }

    public convenience init(pem: String) throws(ClusterError) {
        let bio = try memoryBIO(Array(pem.utf8))
        guard let k = PEM_read_bio_PrivateKey(bio.bio, nil, nil, nil) else { throw openSSLError("not a PEM private key") }
        self.init(owning: k)
    }

    public func pem() throws(ClusterError) -> String {
        let bio = try memoryBIO()
        guard PEM_write_bio_PrivateKey(bio.bio, pkey, nil, nil, 0, nil, nil) == 1 else { throw openSSLError("cannot write the key") }
        return bio.string
    }
}

func memoryBIO(_ bytes: [UInt8]? = nil) throws(ClusterError) -> MemoryBIO {
    let bio: MemoryBIO? = if let bytes { MemoryBIO(bytes) } else { MemoryBIO() }
    guard let bio else { throw openSSLError("BIO_new") }
    return bio
}

/// The cluster's words for a certificate (HakoTransport parses and inspects it).
extension Certificate {
    public convenience init(pem: String) throws(ClusterError) {
        let bio = try memoryBIO(Array(pem.utf8))
        guard let x = PEM_read_bio_X509(bio.bio, nil, nil, nil) else { throw openSSLError("not a PEM certificate") }
        self.init(owning: x)
    }

    /// Every certificate in a PEM bundle, in order.
    public static func bundle(pem: String) throws(ClusterError) -> [Certificate] {
        let out = Certificate.all(pem: pem)
        if out.isEmpty { throw .security("no PEM certificate found") }
        return out
    }

    public func pem() throws(ClusterError) -> String {
        guard let text = pemText else { throw openSSLError("cannot write the certificate") }
        return text
    }

    /// The subject's OU: `hako-<role>`.
    public var role: String {
        let ou = organizationalUnit
        return ou.hasPrefix("hako-") ? String(ou.dropFirst(5)) : ""
    }

    public var publicKeyMatches: (PrivateKey) -> Bool {
        { key in key.matches(self) }
    }

    /// Whether `self` chains to `ca` right now (signature, validity, CA flags).
    public func verify(against ca: Certificate, at time: Double? = nil) throws(ClusterError) {
        guard let store = X509_STORE_new() else { throw openSSLError("X509_STORE_new") }
        defer { X509_STORE_free(store) }
        X509_STORE_add_cert(store, ca.x509)
        guard let ctx = X509_STORE_CTX_new() else { throw openSSLError("X509_STORE_CTX_new") }
        defer { X509_STORE_CTX_free(ctx) }
        guard X509_STORE_CTX_init(ctx, store, x509, nil) == 1 else { throw openSSLError("X509_STORE_CTX_init") }
        if let time { X509_STORE_CTX_set_time(ctx, 0, time_t(time)) }
        if X509_verify_cert(ctx) != 1 {
            let e = X509_STORE_CTX_get_error(ctx)
            ERR_clear_error()
            throw .security("certificate \(commonName): \(String(cString: X509_verify_cert_error_string(Int(e))))")
        }
    }
}

/// A certificate signing request: a key's public half, signed with it.
public final class CertificateRequest: @unchecked Sendable {
    let req: OpaquePointer

    deinit { X509_REQ_free(req) }

    /// A request for `key` (the subject is chosen by the CA, not the requester).
    public init(key: PrivateKey) throws(ClusterError) {
        guard let r = X509_REQ_new() else { throw openSSLError("X509_REQ_new") }
        req = r
        guard X509_REQ_set_version(r, 0) == 1, X509_REQ_set_pubkey(r, key.pkey) == 1,
              X509_REQ_sign(r, key.pkey, EVP_sha256()) > 0 else { throw openSSLError("cannot sign the request") }
    }

    public init(pem: String) throws(ClusterError) {
        guard pem.utf8.count < 16384 else { throw .security("the certificate request is too large") }
        let bio = try memoryBIO(Array(pem.utf8))
        guard let r = PEM_read_bio_X509_REQ(bio.bio, nil, nil, nil) else { throw openSSLError("not a PEM certificate request") }
        req = r
    }

    public func pem() throws(ClusterError) -> String {
        let bio = try memoryBIO()
        guard PEM_write_bio_X509_REQ(bio.bio, req) == 1 else { throw openSSLError("cannot write the request") }
        return bio.string
    }

    /// Whether the request is signed with the key of `cert` (its signature
    /// verified): the requester holds that certificate's private key.
    public func provesKey(of cert: Certificate) -> Bool {
        guard let pub = try? verifiedPublicKey(), let certKey = X509_get0_pubkey(cert.x509) else { return false }
        return EVP_PKEY_eq(pub, certKey) == 1
    }

    /// The requester's public key, once its signature proves it holds the private one.
    func verifiedPublicKey() throws(ClusterError) -> OpaquePointer {
        guard let pub = X509_REQ_get0_pubkey(req) else { throw openSSLError("the request has no public key") }
        guard X509_REQ_verify(req, pub) == 1 else { throw openSSLError("the request's signature does not match its key") }
        return pub
    }
}

public enum PKI {
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        var md = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeBufferPointer { b in
            md.withUnsafeMutableBufferPointer { o in _ = SHA256(b.baseAddress, b.count, o.baseAddress) }
        }
        return hexString(md)
    }

    /// Constant-time comparison of two strings of equal length (token secrets).
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        constantTimeEqual(Array(a.utf8), Array(b.utf8))
    }

    /// Constant-time comparison of two byte strings (libcrypto's
    /// `CRYPTO_memcmp`): the time depends on the length only, never on
    /// where they differ. Lengths that differ answer at once (a length is
    /// not the secret: `secret inspect` shows it).
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }
}
