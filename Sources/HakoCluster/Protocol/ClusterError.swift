import HakoSystem

/// What the cluster code throws. Every case reads as one line for a person;
/// `hakoError` is the form the CLI prints (exit status 125).
public enum ClusterError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A configuration setting that cannot be used: its key and why.
    case config(key: String, reason: String)
    /// Input that cannot be used (a flag, a spec field, a name).
    case invalid(String)
    /// A name or id that matches nothing.
    case notFound(String)
    /// The request conflicts with the current state (a name in use, a node not down).
    case conflict(String)
    /// Certificates, keys, tokens, TLS.
    case security(String)
    /// The line protocol: a peer sent something unusable, or the peer said so.
    case wire(code: String, message: String)
    /// The coordinator's database.
    case store(String)
    /// Sockets, connections, timeouts.
    case network(String)

    public var description: String {
        switch self {
        case .config(let key, let reason): return "configuration: \(key): \(reason)"
        case .invalid(let m), .notFound(let m), .conflict(let m), .security(let m), .store(let m), .network(let m): return m
        case .wire(_, let m): return m
        }
    }

    public var hakoError: HakoError { HakoError(.failed, description) }
}
