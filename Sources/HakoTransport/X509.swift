#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import HakoSystem

/// An in-memory BIO holding its own copy of the bytes, freed with the value.
package final class MemoryBIO {
    package let bio: OpaquePointer

    /// An empty one, to write into.
    package init?() {
        guard let b = BIO_new(BIO_s_mem()) else { return nil }
        bio = b
    }

    /// One holding a copy of `bytes`, to read from.
    package init?(_ bytes: [UInt8]) {
        guard let b = BIO_new(BIO_s_mem()) else { return nil }
        let written = bytes.withUnsafeBytes { BIO_write(b, $0.baseAddress, Int32($0.count)) }
        guard written == Int32(bytes.count) || bytes.isEmpty else { BIO_free(b); return nil }
        bio = b
    }

    deinit { BIO_free(bio) }

    package var contents: [UInt8] {
        var p: UnsafePointer<CChar>?
        let n = hako_bio_mem_data(bio, &p)
        guard let p, n > 0 else { return [] }
        return p.withMemoryRebound(to: UInt8.self, capacity: n) { Array(UnsafeBufferPointer(start: $0, count: n)) }
    }

    package var string: String { String(decoding: contents, as: UTF8.self) }
}

/// An X.509 certificate: what a TLS peer presents and what a trust store
/// holds. Parsing and inspection live here, below everything that speaks
/// TLS; issuing certificates is the cluster's CA's (HakoCluster/PKI).
public final class Certificate: @unchecked Sendable {
    package let x509: OpaquePointer

    package init(owning x: OpaquePointer) { x509 = x }
    /// Takes a reference of its own.
    package init(retaining x: OpaquePointer) {
        X509_up_ref(x)
        x509 = x
    }
    deinit { X509_free(x509) }

    /// Every certificate of a PEM text, in order (none: not PEM certificates).
    public static func all(pem: String) -> [Certificate] {
        guard let bio = MemoryBIO(Array(pem.utf8)) else { return [] }
        var out: [Certificate] = []
        while let x = PEM_read_bio_X509(bio.bio, nil, nil, nil) { out.append(Certificate(owning: x)) }
        // The end of the text reads as an error ("no start line").
        ERR_clear_error()
        return out
    }

    /// Every certificate of a PEM file, in order.
    public static func load(file path: String) throws(TransportError) -> [Certificate] {
        let text: String
        do { text = try FS.readString(path) } catch {
            throw .tls(peer: "-", reason: FS.exists(path) ? "cannot read \(path): \(error)" : "\(path) does not exist")
        }
        let certs = all(pem: text)
        guard !certs.isEmpty else { throw .tls(peer: "-", reason: "\(path) holds no PEM certificate") }
        return certs
    }

    /// The PEM text; nil only when OpenSSL cannot allocate.
    public var pemText: String? {
        guard let bio = MemoryBIO(), PEM_write_bio_X509(bio.bio, x509) == 1 else { return nil }
        return bio.string
    }

    public var der: [UInt8] {
        let n = i2d_X509(x509, nil)
        guard n > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: Int(n))
        out.withUnsafeMutableBufferPointer { buf in
            var p: UnsafeMutablePointer<UInt8>? = buf.baseAddress
            _ = i2d_X509(x509, &p)
        }
        return out
    }

    /// SHA-256 of the DER encoding, hex (what a join token pins).
    public var fingerprint: String {
        let bytes = der
        var md = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeBufferPointer { b in
            md.withUnsafeMutableBufferPointer { o in _ = SHA256(b.baseAddress, b.count, o.baseAddress) }
        }
        return hexString(md)
    }

    /// The serial number, lower-case hex.
    public var serial: String {
        guard let asn = X509_get_serialNumber(x509), let bn = ASN1_INTEGER_to_BN(asn, nil) else { return "" }
        defer { BN_free(bn) }
        guard let hex = BN_bn2hex(bn) else { return "" }
        defer { hako_openssl_free(hex) }
        return String(cString: hex).lowercased()
    }

    /// The validity, seconds since 1970 (0 when unreadable).
    public var notBefore: Double { Certificate.seconds(X509_get0_notBefore(x509)) ?? 0 }
    public var notAfter: Double { Certificate.seconds(X509_get0_notAfter(x509)) ?? 0 }

    static func seconds(_ t: UnsafePointer<ASN1_TIME>?) -> Double? {
        guard let t else { return nil }
        var tm = Glibc.tm()
        guard ASN1_TIME_to_tm(t, &tm) == 1 else { return nil }
        return Double(timegm(&tm))
    }

    /// One entry of the subject's name ("" when absent).
    func subjectEntry(_ nid: Int32) -> String {
        guard let name = X509_get_subject_name(x509) else { return "" }
        var buf = [CChar](repeating: 0, count: 256)
        let n = X509_NAME_get_text_by_NID(name, nid, &buf, Int32(buf.count))
        return n > 0 ? cString(buf) : ""
    }

    /// The subject's CN, O and OU.
    public var commonName: String { subjectEntry(NID_commonName) }
    public var organization: String { subjectEntry(NID_organizationName) }
    public var organizationalUnit: String { subjectEntry(NID_organizationalUnitName) }
}

/// A private key (the cluster's are ECDSA P-256).
public final class PrivateKey: @unchecked Sendable {
    package let pkey: OpaquePointer

    package init(owning p: OpaquePointer) { pkey = p }
    deinit { EVP_PKEY_free(pkey) }

    /// The first private key of a PEM text; nil when there is none.
    public static func first(pem: String) -> PrivateKey? {
        guard let bio = MemoryBIO(Array(pem.utf8)) else { return nil }
        guard let k = PEM_read_bio_PrivateKey(bio.bio, nil, nil, nil) else { ERR_clear_error(); return nil }
        return PrivateKey(owning: k)
    }

    /// The key of a PEM file.
    public static func load(file path: String) throws(TransportError) -> PrivateKey {
        let text: String
        do { text = try FS.readString(path) } catch {
            throw .tls(peer: "-", reason: FS.exists(path) ? "cannot read \(path): \(error)" : "\(path) does not exist")
        }
        guard let key = first(pem: text) else { throw .tls(peer: "-", reason: "cannot load key \(path): not a PEM private key") }
        return key
    }

    /// Whether `certificate` is this key's public half's.
    public func matches(_ certificate: Certificate) -> Bool { X509_check_private_key(certificate.x509, pkey) == 1 }
}
