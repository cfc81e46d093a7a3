import FoundationEssentials

/// `secret create` / `config create`: the data travels once, over the admin's mutual TLS.
public struct SecretCreateRequest: Codable, Sendable {
    public var kind: SecretKind
    public var name: String
    public var labels: [String: String]
    public var data: Data
    public init(kind: SecretKind, name: String, labels: [String: String] = [:], data: [UInt8]) {
        self.kind = kind
        self.name = name
        self.labels = labels
        self.data = Data(data)
    }
}

/// `secret inspect|rm` and `config inspect|rm`: by id, name or id prefix.
public struct SecretRef: Codable, Sendable {
    public var kind: SecretKind
    public var ref: String
    public init(kind: SecretKind, ref: String) { self.kind = kind; self.ref = ref }
}

/// `secret.compare`: is `data` the stored data of the secret (or config)
/// `ref` names? The candidate travels as `secret.create`'s would, over the
/// admin's mutual TLS; the reply says only same or different — the stored
/// data never leaves the coordinator. `stack deploy` asks it of a secret
/// its files name that exists already (Swarm's: the data cannot change).
public struct SecretCompareRequest: Codable, Sendable {
    public var kind: SecretKind
    public var ref: String
    public var data: Data
    public init(kind: SecretKind, ref: String, data: [UInt8]) {
        self.kind = kind
        self.ref = ref
        self.data = Data(data)
    }
}

public struct SecretCompareReply: Codable, Sendable, Equatable {
    public var same: Bool
    public init(same: Bool) { self.same = same }
}

public struct SecretListRequest: Codable, Sendable {
    public var kind: SecretKind
    public init(kind: SecretKind) { self.kind = kind }
}

/// What `ls` and `inspect` show: metadata only, never the data.
public struct SecretView: Codable, Sendable, Equatable {
    public var id: String
    public var kind: SecretKind
    public var name: String
    public var labels: [String: String]
    public var created: Double
    public var updated: Double
    /// The data's length in bytes.
    public var size: Int
    /// The services that use it.
    public var services: [String]
}

public struct SecretList: Codable, Sendable { public var items: [SecretView] }

/// coordinator → agent (`secret.data`, no reply): a secret's or config's
/// plaintext, sent only to a node assigned a task that uses it, only over the
/// node's mutual TLS, before that assignment; the agent keeps it in memory.
public struct SecretData: Codable, Sendable {
    public var id: String
    public var kind: SecretKind
    public var data: Data
    public init(id: String, kind: SecretKind, data: [UInt8]) {
        self.id = id
        self.kind = kind
        self.data = Data(data)
    }
}
