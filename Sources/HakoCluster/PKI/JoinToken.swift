import HakoSystem

/// A join token: `HKT1-<CA fingerprint>-<id>-<secret>`. The fingerprint
/// (SHA-256 of the CA certificate) lets a joining agent pin the coordinator
/// before it trusts anything; the id finds the token in the store, which keeps
/// only a hash of the secret. Single-use, and it expires.
public struct JoinToken: Sendable, Equatable, CustomStringConvertible {
    public static let prefix = "HKT1"
    public var caFingerprint: String
    public var id: String
    public var secret: String

    public static func make(caFingerprint: String) -> JoinToken {
        JoinToken(caFingerprint: caFingerprint, id: String(Identifiers.make().prefix(12)), secret: hexString(randomBytes(16)))
    }

    public init(caFingerprint: String, id: String, secret: String) {
        self.caFingerprint = caFingerprint
        self.id = id
        self.secret = secret
    }

    public init(parsing s: String) throws(ClusterError) {
        let parts = s.trimmed.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        func hex(_ x: String, _ n: Int) -> Bool { x.utf8.count == n && x.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) } }
        guard parts.count == 4, parts[0] == JoinToken.prefix, hex(parts[1], 64),
              parts[2].utf8.count == 12, parts[2].utf8.allSatisfy({ Identifiers.alphabet.contains($0) }), hex(parts[3], 32) else {
            throw .security("not a join token (expected \(JoinToken.prefix)-<64 hex>-<id>-<32 hex>, as `hako cluster token` prints)")
        }
        self.init(caFingerprint: parts[1], id: parts[2], secret: parts[3])
    }

    public var description: String { "\(JoinToken.prefix)-\(caFingerprint)-\(id)-\(secret)" }
    public var secretHash: String { PKI.sha256Hex(Array(secret.utf8)) }
}
