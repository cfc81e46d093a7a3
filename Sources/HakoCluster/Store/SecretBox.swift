#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import HakoSystem

/// The key secrets and configs are sealed with in the store: 32 random bytes
/// (AES-256-GCM through libcrypto) kept in a file of their own, 0600, beside
/// the CA key under `<data_dir>/pki` — never in the database nor the Raft log,
/// which hold only the sealed bytes. A coordinator that joins receives it with
/// the CA key over mutual TLS (`coordinator.secrets`).
public struct SecretBox: Sendable {
    public static let keyLength = 32
    static let nonceLength = 12
    static let tagLength = 16
    /// The format byte that starts every sealed value (1: AES-256-GCM, nonce, ciphertext, tag).
    static let format: UInt8 = 1

    let key: [UInt8]

    public init(key: [UInt8]) throws(ClusterError) {
        guard key.count == SecretBox.keyLength else { throw .security("a secrets key is \(SecretBox.keyLength) bytes, not \(key.count)") }
        self.key = key
    }

    public static func generate() -> SecretBox {
        // randomBytes is getrandom: the kernel's CSPRNG.
        SecretBox(unchecked: randomBytes(keyLength))
    }

    private init(unchecked key: [UInt8]) { self.key = key }

    /// Names the key without revealing it (the first 8 bytes of its SHA-256, hex):
    /// stored with each sealed value, so a wrong key is reported as such.
    public var keyID: String {
        var ctx = SHA256_CTX()
        var out = [UInt8](repeating: 0, count: 32)
        _ = hako_sha256_init(&ctx)
        _ = hako_sha256_update(&ctx, Array("hako-secrets-key".utf8) + key, 16 + key.count)
        _ = hako_sha256_final(&out, &ctx)
        return hexString(Array(out.prefix(8)))
    }

    /// `format ‖ nonce ‖ ciphertext ‖ tag`. `context` (the record's kind and
    /// id) is authenticated with it: a sealed value moved to another record
    /// does not open.
    public func seal(_ plaintext: [UInt8], context: String) throws(ClusterError) -> [UInt8] {
        let nonce = randomBytes(SecretBox.nonceLength)
        guard let ctx = EVP_CIPHER_CTX_new() else { throw openSSLError("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let aad = Array(context.utf8)
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        var len: Int32 = 0
        var total = 0
        guard EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(SecretBox.nonceLength), nil) == 1,
              EVP_EncryptInit_ex(ctx, nil, nil, key, nonce) == 1 else { throw openSSLError("cannot seal") }
        if !aad.isEmpty { guard EVP_EncryptUpdate(ctx, nil, &len, aad, Int32(aad.count)) == 1 else { throw openSSLError("cannot seal") } }
        if !plaintext.isEmpty {
            let ok = out.withUnsafeMutableBufferPointer { o in EVP_EncryptUpdate(ctx, o.baseAddress, &len, plaintext, Int32(plaintext.count)) }
            guard ok == 1 else { throw openSSLError("cannot seal") }
            total = Int(len)
        }
        let ok = out.withUnsafeMutableBufferPointer { o in EVP_EncryptFinal_ex(ctx, o.baseAddress.map { $0 + total }, &len) }
        guard ok == 1 else { throw openSSLError("cannot seal") }
        total += Int(len)
        var tag = [UInt8](repeating: 0, count: SecretBox.tagLength)
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(SecretBox.tagLength), &tag) == 1 else { throw openSSLError("cannot seal") }
        return [SecretBox.format] + nonce + out.prefix(total) + tag
    }

    /// The plaintext, or an error when the key, the context or a byte differs.
    public func open(_ sealed: [UInt8], context: String) throws(ClusterError) -> [UInt8] {
        let head = 1 + SecretBox.nonceLength
        guard sealed.count >= head + SecretBox.tagLength, sealed[0] == SecretBox.format else {
            throw .security("a sealed value of an unknown format")
        }
        let nonce = Array(sealed[1..<head])
        let body = Array(sealed[head..<(sealed.count - SecretBox.tagLength)])
        var tag = Array(sealed.suffix(SecretBox.tagLength))
        guard let ctx = EVP_CIPHER_CTX_new() else { throw openSSLError("EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let aad = Array(context.utf8)
        var out = [UInt8](repeating: 0, count: body.count + 16)
        var len: Int32 = 0
        var total = 0
        guard EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(SecretBox.nonceLength), nil) == 1,
              EVP_DecryptInit_ex(ctx, nil, nil, key, nonce) == 1 else { throw openSSLError("cannot open") }
        if !aad.isEmpty { guard EVP_DecryptUpdate(ctx, nil, &len, aad, Int32(aad.count)) == 1 else { throw openSSLError("cannot open") } }
        if !body.isEmpty {
            let ok = out.withUnsafeMutableBufferPointer { o in EVP_DecryptUpdate(ctx, o.baseAddress, &len, body, Int32(body.count)) }
            guard ok == 1 else { throw openSSLError("cannot open") }
            total = Int(len)
        }
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(SecretBox.tagLength), &tag) == 1 else { throw openSSLError("cannot open") }
        let ok = out.withUnsafeMutableBufferPointer { o in EVP_DecryptFinal_ex(ctx, o.baseAddress.map { $0 + total }, &len) }
        // The tag does not match: another key, another record, or changed bytes.
        guard ok == 1 else {
            ERR_clear_error()
            throw .security("a sealed value does not open with this key (another key, or the bytes were changed)")
        }
        total += Int(len)
        return Array(out.prefix(total))
    }

    // MARK: the key file

    /// `<data_dir>/pki/secrets.key`: the key, hex, one line.
    public static func keyPath(dataDir: String) -> String { CoordinatorPKI(dataDir: dataDir).dir + "/secrets.key" }

    public static func load(path: String) throws(ClusterError) -> SecretBox {
        let text: String
        do { text = try FS.readString(path) } catch { throw .security("cannot read the secrets key \(path): \(error)") }
        guard let bytes = hexBytes(text.trimmed) else { throw .security("\(path) is not a secrets key (64 hex digits)") }
        return try SecretBox(key: bytes)
    }

    /// The key of this coordinator, made (0600) when it has none: a cluster
    /// made before secrets existed gets its key at the coordinator's first
    /// start. Its coordinators joined without one, so each derives it from
    /// the CA key they all hold (`derived(fromCAKey:)`): the same key on every
    /// one of them, with no exchange. Without a CA key, a random one.
    public static func loadOrCreate(dataDir: String) throws(ClusterError) -> SecretBox {
        let path = keyPath(dataDir: dataDir)
        if FS.exists(path) { return try load(path: path) }
        let caKey = CoordinatorPKI(dataDir: dataDir).caKey
        let box = FS.exists(caKey) ? try derived(fromCAKey: caKey) : generate()
        try box.write(to: path)
        return box
    }

    /// SHA-256 of a label and the CA key's PEM (which every coordinator holds
    /// byte for byte: the join hands the file over as it is).
    static func derived(fromCAKey path: String) throws(ClusterError) -> SecretBox {
        let pem: [UInt8]
        do { pem = try FS.readFile(path) } catch { throw .security("cannot read the CA key \(path): \(error)") }
        let input = Array("hako-secrets-key-from-ca/1\0".utf8) + pem
        var ctx = SHA256_CTX()
        var out = [UInt8](repeating: 0, count: keyLength)
        _ = hako_sha256_init(&ctx)
        _ = hako_sha256_update(&ctx, input, input.count)
        _ = hako_sha256_final(&out, &ctx)
        return SecretBox(unchecked: out)
    }

    public func write(to path: String) throws(ClusterError) { try writeSecret(path, hexString(key) + "\n") }

    /// The key as the join hands it over (hex).
    public var exported: String { hexString(key) }

    static func hexBytes(_ s: String) -> [UInt8]? {
        let b = Array(s.utf8)
        guard b.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(b.count / 2)
        var i = 0
        while i < b.count {
            guard let h = nibble(b[i]), let l = nibble(b[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }
}
