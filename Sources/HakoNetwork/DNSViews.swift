import HakoSystem

/// Which names a querying container sees: those of the networks it is on,
/// and no others (Swarm's per-network service discovery). A view is one
/// network's names; a query is answered from the views of its source address:
///
///     let views = DNSViews(names: ["cluster": [...], "net-a": ["db": [10.96.0.2]], "net-b": [...]],
///                          members: [10.96.0.3: ["net-a"], 10.96.16.2: ["net-a", "net-b"], 10.96.0.4: ["net-a", "net-b"]],
///                          ranges: [(10.96.0.0/20, "net-a"), (10.96.16.0/20, "net-b"), (10.88.0.0/16, "cluster")],
///                          fallback: "cluster")
///     views.records(for: 10.96.0.3)    // net-a's names only
///
/// `members`: every address of each container on this node → the views of
/// the networks that container is on, in its interfaces' order (a name in
/// two of them resolves as in the first: its own network's addresses). A
/// source that is no known container sees the view of the network whose
/// CIDR holds it (a container started since the last observation), and
/// any other source the `fallback` view (the node itself). Every address
/// list is precomputed here, so a query costs one dictionary look-up.
public struct DNSViews: Sendable, Equatable {
    public struct Range: Sendable, Equatable {
        public var cidr: IPv4Network
        public var view: String
        public init(_ cidr: IPv4Network, _ view: String) { self.cidr = cidr; self.view = view }
    }

    public private(set) var names: [String: [String: [IPv4Address]]]
    public private(set) var members: [IPv4Address: [String]]
    public private(set) var ranges: [Range]
    public private(set) var fallback: String?
    /// Per member address: its views merged; per view: its own names (normalised).
    private var merged: [IPv4Address: [String: [IPv4Address]]] = [:]
    private var single: [String: [String: [IPv4Address]]] = [:]
    /// Every view's names: a name of another network is answered "no such
    /// name" here, never asked of the upstream resolvers (the cluster's names stay in it).
    public private(set) var known: Set<String> = []

    public init(names: [String: [String: [IPv4Address]]], members: [IPv4Address: [String]] = [:], ranges: [Range] = [], fallback: String? = nil) {
        self.names = names; self.members = members; self.ranges = ranges; self.fallback = fallback
        single = names.mapValues(DNSViews.normalized)
        known = Set(single.values.flatMap(\.keys))
        var cache: [[String]: [String: [IPv4Address]]] = [:]
        for (address, views) in members {
            if let m = cache[views] { merged[address] = m; continue }
            var m: [String: [IPv4Address]] = [:]
            for v in views { for (name, list) in single[v] ?? [:] where m[name] == nil { m[name] = list } }
            cache[views] = m
            merged[address] = m
        }
    }

    /// One view for every source (a responder of a single network).
    public init(records: [String: [IPv4Address]]) {
        self.init(names: ["": records], fallback: "")
    }

    /// The names a query from `source` is answered from.
    public func records(for source: IPv4Address) -> [String: [IPv4Address]] {
        if let m = merged[source] { return m }
        if let r = ranges.filter({ $0.cidr.contains(source) }).max(by: { $0.cidr.prefix < $1.cidr.prefix }) { return single[r.view] ?? [:] }
        return fallback.flatMap { single[$0] } ?? [:]
    }

    /// Names without case and without the trailing dot; lists of the same name joined.
    static func normalized(_ r: [String: [IPv4Address]]) -> [String: [IPv4Address]] {
        var out: [String: [IPv4Address]] = [:]
        for (k, v) in r {
            var name = k.lowercased()
            if name.hasSuffix(".") { name.removeLast() }
            out[name, default: []] += v
        }
        return out
    }
}
