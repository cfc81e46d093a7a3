import FoundationEssentials
import HakoSystem

/// Secrets and configs are the same object with one difference: where a
/// relative target lands (a secret's at `/run/secrets/<target>`, a config's at
/// `/<target>`).
public enum SecretKind: String, Codable, Sendable, CaseIterable {
    case secret, config

    /// Where a reference's relative target lands.
    public func path(of target: String) -> String {
        if target.hasPrefix("/") { return target }
        return self == .secret ? "/run/secrets/" + target : "/" + target
    }
}

/// A secret or a config as stored: its data sealed with the coordinator's
/// secrets key (`SecretBox`), never in plaintext.
public struct SecretRecord: Codable, Sendable, Equatable {
    public var id: String
    public var kind: SecretKind
    public var name: String
    public var labels: [String: String]
    public var created: Double
    public var updated: Double
    /// The key it was sealed with (`SecretBox.keyID`).
    public var keyID: String
    /// `SecretBox.seal` of the data, bound to `sealContext`.
    public var sealed: Data
    /// The plaintext's length in bytes (shown by inspect; not secret).
    public var size: Int

    public init(id: String, kind: SecretKind, name: String, labels: [String: String], created: Double, updated: Double,
                keyID: String, sealed: Data, size: Int) {
        self.id = id
        self.kind = kind
        self.name = name
        self.labels = labels
        self.created = created
        self.updated = updated
        self.keyID = keyID
        self.sealed = sealed
        self.size = size
    }

    /// What the AEAD authenticates with the data: a sealed value copied into another record does not open.
    public static func sealContext(kind: SecretKind, id: String) -> String { "hako-\(kind.rawValue):\(id)" }

    /// Seals `data` into a new record.
    public static func make(kind: SecretKind, name: String, labels: [String: String], data: [UInt8], box: SecretBox,
                            now: Double, id: String = Identifiers.make()) throws(ClusterError) -> SecretRecord {
        let sealed = try box.seal(data, context: sealContext(kind: kind, id: id))
        return SecretRecord(id: id, kind: kind, name: name, labels: labels, created: now, updated: now, keyID: box.keyID,
                            sealed: Data(sealed), size: data.count)
    }

    public func open(with box: SecretBox) throws(ClusterError) -> [UInt8] {
        guard keyID == box.keyID else {
            throw .security("\(kind.rawValue) \(name) was sealed with key \(keyID), this coordinator holds \(box.keyID) (pki/secrets.key of another cluster?)")
        }
        return try box.open(Array(sealed), context: SecretRecord.sealContext(kind: kind, id: id))
    }

    /// Swarm's bound: 500 KiB.
    public static let maxSize = 500 * 1024

    /// Secret and config names: as Swarm's, 1–64 letters, digits, '-', '_' or '.', starting and ending with a letter or digit.
    public static func isValidName(_ s: String) -> Bool {
        let b = Array(s.utf8)
        guard (1...64).contains(b.count) else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        guard let first = b.first, let last = b.last, alnum(first), alnum(last) else { return false }
        return b.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    /// Refuses a name, labels or data Swarm would refuse.
    public static func validate(kind: SecretKind, name: String, labels: [String: String], size: Int) throws(ClusterError) {
        guard isValidName(name) else {
            throw .invalid("invalid \(kind.rawValue) name \"\(name)\": 1–64 letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
        }
        guard size > 0 else { throw .invalid("\(kind.rawValue) \(name) is empty") }
        guard size <= maxSize else { throw .invalid("\(kind.rawValue) \(name) is \(size) bytes: at most \(maxSize) (500 KiB)") }
        for k in labels.keys where k.isEmpty { throw .invalid("a label needs a key") }
    }
}

/// A service's use of a secret (or a config): which one, and the file its
/// tasks see. `source` is the name the admin gives; `id` is filled in by the
/// coordinator when the service is created or updated (a secret removed and
/// made again under the same name is another secret).
public struct SecretReference: Codable, Sendable, Equatable, Hashable {
    /// The secret's (config's) name.
    public var source: String
    /// Its id, resolved by the coordinator ("" until then).
    public var id: String
    /// The file's name under /run/secrets (a secret), or its path (a config; relative: under /). Default: `source`.
    public var target: String
    public var uid: UInt32
    public var gid: UInt32
    /// Default 0444, as Swarm's.
    public var mode: UInt32

    public init(source: String, id: String = "", target: String? = nil, uid: UInt32 = 0, gid: UInt32 = 0, mode: UInt32 = 0o444) {
        self.source = source
        self.id = id
        self.target = target ?? source
        self.uid = uid
        self.gid = gid
        self.mode = mode
    }

    /// `--secret NAME` or `--secret source=NAME,target=…,uid=…,gid=…,mode=0400` (and `--config` likewise).
    public init(parsing text: String, kind: SecretKind) throws(ClusterError) {
        func bad(_ why: String) -> ClusterError { .invalid("invalid --\(kind.rawValue) \"\(text)\": \(why)") }
        guard text.contains("=") else {
            guard !text.isEmpty else { throw bad("a name is needed") }
            self.init(source: text)
            return
        }
        var source: String?, target: String?
        var uid: UInt32 = 0, gid: UInt32 = 0, mode: UInt32 = 0o444
        for field in text.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard kv.count == 2, !kv[1].isEmpty else { throw bad("\"\(field)\" is not KEY=VALUE") }
            switch kv[0] {
            case "source", "src": source = kv[1]
            case "target", "dst", "destination": target = kv[1]
            case "uid":
                guard let v = UInt32(kv[1]) else { throw bad("uid must be a number") }
                uid = v
            case "gid":
                guard let v = UInt32(kv[1]) else { throw bad("gid must be a number") }
                gid = v
            case "mode":
                guard let v = UInt32(kv[1], radix: 8), v <= 0o777 else { throw bad("mode must be an octal mode such as 0400") }
                mode = v
            default: throw bad("unknown option \(kv[0]) (source, target, uid, gid, mode)")
            }
        }
        guard let source else { throw bad("source= is needed") }
        self.init(source: source, target: target, uid: uid, gid: gid, mode: mode)
    }

    /// The path inside the container.
    public func path(_ kind: SecretKind) -> String { kind.path(of: target) }

    /// Refuses a reference no container could hold.
    public func validate(_ kind: SecretKind) throws(ClusterError) {
        guard SecretRecord.isValidName(source) else { throw .invalid("invalid \(kind.rawValue) name \"\(source)\"") }
        guard !target.isEmpty, !target.contains("\0") else { throw .invalid("\(kind.rawValue) \(source): an empty target") }
        if kind == .secret && !target.hasPrefix("/") {
            guard !target.contains("/"), target != ".", target != ".." else {
                throw .invalid("secret \(source): target \"\(target)\" must be a file name under /run/secrets (or an absolute path)")
            }
        }
        let p = path(kind)
        guard FS.normalize(p) == p, p != "/", !p.split(separator: "/").contains("..") else {
            throw .invalid("\(kind.rawValue) \(source): target \"\(target)\" is not a clean path")
        }
        guard mode <= 0o777 else { throw .invalid("\(kind.rawValue) \(source): mode \(String(mode, radix: 8)) is not a file mode") }
    }
}

/// A config reference has the same fields; its target defaults to `/<name>`.
public typealias ConfigReference = SecretReference

extension ServiceSpec {
    /// Every file a task gets: (kind, reference), secrets first.
    public var fileReferences: [(kind: SecretKind, ref: SecretReference)] {
        secrets.map { (SecretKind.secret, $0) } + configs.map { (SecretKind.config, $0) }
    }

    /// Secrets and configs: valid references, no two files at one path.
    func validateFiles() throws(ClusterError) {
        var paths = Set<String>()
        for (kind, r) in fileReferences {
            try r.validate(kind)
            guard paths.insert(r.path(kind)).inserted else {
                throw .invalid("two secrets or configs at \(r.path(kind))")
            }
        }
    }
}
