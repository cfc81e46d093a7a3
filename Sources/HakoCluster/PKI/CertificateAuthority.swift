#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import HakoNetwork
import HakoSystem

/// Who a certificate is for; written as the subject's OU (`hako-<role>`).
public enum PKIRole: String, Sendable {
    case coordinator, node, admin

    /// The role a join token is made for: a node (nil, "node") or a coordinator.
    public static func joining(_ name: String?) throws(ClusterError) -> PKIRole {
        switch name ?? "node" {
        case "node": return .node
        case "coordinator": return .coordinator
        default: throw .invalid("a token is for a node or a coordinator, not \"\(name ?? "")\"")
        }
    }
}

/// The cluster CA: signs the coordinator's, the nodes' and the admin's certificates.
public struct CertificateAuthority: Sendable {
    public let certificate: Certificate
    let key: PrivateKey
    public let clusterID: String

    public init(certificate: Certificate, key: PrivateKey, clusterID: String) {
        self.certificate = certificate
        self.key = key
        self.clusterID = clusterID
    }

    /// A new self-signed CA, valid for `years`. `name` is its CN (a rotated
    /// root carries the time it was made, so the two roots of a rotation and
    /// the issuers of their certificates read differently).
    public static func create(clusterID: String, years: Int = 10, now: Double, name: String = "hako cluster CA") throws(ClusterError) -> CertificateAuthority {
        let key = try PrivateKey.generate()
        let cert = try build(subject: name, role: nil, clusterID: clusterID, publicKey: key.pkey, issuer: nil,
                             signer: key, notBefore: now - 300, notAfter: now + Double(years) * 365 * 86400, sans: [])
        return CertificateAuthority(certificate: cert, key: key, clusterID: clusterID)
    }

    /// Validity for a certificate issued now: back-dated a little for clocks
    /// that lag (at most 5 minutes, at most a tenth of the lifetime).
    public static func validity(now: Double, lifetime: Double) -> (notBefore: Double, notAfter: Double) {
        (now - min(300, lifetime / 10), now + lifetime)
    }

    /// A certificate for `commonName` with `role`, for the key a request proves to hold.
    public func issue(request: CertificateRequest, commonName: String, role: PKIRole, notBefore: Double, notAfter: Double,
                      sans: [String] = []) throws(ClusterError) -> Certificate {
        let pub = try request.verifiedPublicKey()
        return try CertificateAuthority.build(subject: commonName, role: role, clusterID: clusterID, publicKey: pub,
                                              issuer: certificate, signer: key, notBefore: notBefore, notAfter: notAfter, sans: sans)
    }

    /// A certificate for a key pair made here (the coordinator's own, the admin's).
    public func issue(key: PrivateKey, commonName: String, role: PKIRole, notBefore: Double, notAfter: Double,
                      sans: [String] = []) throws(ClusterError) -> Certificate {
        try CertificateAuthority.build(subject: commonName, role: role, clusterID: clusterID, publicKey: key.pkey,
                                       issuer: certificate, signer: self.key, notBefore: notBefore, notAfter: notAfter, sans: sans)
    }

    static func build(subject: String, role: PKIRole?, clusterID: String, publicKey: OpaquePointer, issuer: Certificate?,
                      signer: PrivateKey, notBefore: Double, notAfter: Double, sans: [String]) throws(ClusterError) -> Certificate {
        guard let x = X509_new() else { throw openSSLError("X509_new") }
        let cert = Certificate(owning: x)
        guard X509_set_version(x, 2) == 1 else { throw openSSLError("X509_set_version") }

        // A random positive 127-bit serial.
        var serial = randomBytes(16)
        serial[0] &= 0x7f
        serial[0] |= 0x01
        guard let bn = serial.withUnsafeBufferPointer({ BN_bin2bn($0.baseAddress, Int32($0.count), nil) }) else { throw openSSLError("BN_bin2bn") }
        defer { BN_free(bn) }
        guard let asn = BN_to_ASN1_INTEGER(bn, nil) else { throw openSSLError("BN_to_ASN1_INTEGER") }
        defer { ASN1_INTEGER_free(asn) }
        guard X509_set_serialNumber(x, asn) == 1 else { throw openSSLError("X509_set_serialNumber") }

        guard ASN1_TIME_set(X509_getm_notBefore(x), time_t(notBefore)) != nil,
              ASN1_TIME_set(X509_getm_notAfter(x), time_t(notAfter)) != nil else { throw openSSLError("cannot set the validity") }

        guard let name = X509_get_subject_name(x) else { throw openSSLError("X509_get_subject_name") }
        func add(_ field: String, _ value: String) -> Bool {
            X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, value, -1, -1, 0) == 1
        }
        guard add("O", "hako-cluster-\(clusterID)"), role.map({ add("OU", "hako-" + $0.rawValue) }) ?? true, add("CN", subject) else {
            throw openSSLError("cannot set the subject")
        }
        let issuerName = issuer.map { X509_get_subject_name($0.x509) } ?? name
        guard X509_set_issuer_name(x, issuerName) == 1, X509_set_pubkey(x, publicKey) == 1 else { throw openSSLError("cannot set issuer or key") }

        var ctx = X509V3_CTX()
        hako_x509v3_ctx_nodb(&ctx)
        X509V3_set_ctx(&ctx, issuer?.x509 ?? x, x, nil, nil, 0)
        var exts: [(Int32, String)] = []
        if role == nil {
            exts = [(NID_basic_constraints, "critical,CA:TRUE,pathlen:0"), (NID_key_usage, "critical,keyCertSign,cRLSign"),
                    (NID_subject_key_identifier, "hash")]
        } else {
            exts = [(NID_basic_constraints, "critical,CA:FALSE"), (NID_key_usage, "critical,digitalSignature"),
                    (NID_ext_key_usage, "serverAuth,clientAuth"), (NID_subject_key_identifier, "hash"),
                    (NID_authority_key_identifier, "keyid")]
            let alt = ([subject] + sans).map { s -> String in
                IPv4Address(s) != nil || s.contains(":") ? "IP:\(s)" : "DNS:\(s)"
            }.joined(separator: ",")
            exts.append((NID_subject_alt_name, alt))
        }
        for (nid, value) in exts {
            guard let ext = X509V3_EXT_conf_nid(nil, &ctx, nid, value) else { throw openSSLError("extension \(value)") }
            defer { X509_EXTENSION_free(ext) }
            guard X509_add_ext(x, ext, -1) == 1 else { throw openSSLError("X509_add_ext") }
        }
        guard X509_sign(x, signer.pkey, EVP_sha256()) > 0 else { throw openSSLError("cannot sign the certificate") }
        return cert
    }
}
