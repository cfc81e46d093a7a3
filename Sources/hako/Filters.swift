import HakoCLI
import HakoCluster
import HakoEngine
import HakoImage
import HakoNetwork
import HakoSystem

/// `--filter KEY=VALUE` as docker reads it: each key is one entry of a table
/// (key → test of an item against one value). Values given for the same key
/// are alternatives (status=exited status=created), except for keys that
/// require every value (label=a label=b); different keys must all hold.
struct Filters<Item> {
    struct Key {
        /// Every value must hold (label), rather than any (status, name …).
        var requiresAll = false
        /// Checks a value once, before any item is tested (status=bogus is refused).
        var validate: (String) throws -> Void = { _ in }
        var test: (Item, String) -> Bool
    }

    let keys: [String: Key]
    private(set) var given: [(key: String, values: [String])] = []

    init(_ args: [String], keys: [String: Key]) throws {
        self.keys = keys
        for a in args {
            guard let eq = a.firstIndex(of: "="), eq != a.startIndex else {
                throw HakoError(.failed, "bad format of filter (expected name=value): \(a)")
            }
            let k = String(a[..<eq]).lowercased(), v = String(a[a.index(after: eq)...])
            guard let key = keys[k] else {
                throw HakoError(.failed, "invalid filter '\(k)' (valid: \(keys.keys.sorted().joined(separator: ", ")))")
            }
            try key.validate(v)
            if let i = given.firstIndex(where: { $0.key == k }) { given[i].values.append(v) } else { given.append((k, [v])) }
        }
    }

    func has(_ key: String) -> Bool { given.contains { $0.key == key } }

    func admits(_ item: Item) -> Bool {
        given.allSatisfy { g in
            guard let key = keys[g.key] else { return false }
            return key.requiresAll ? g.values.allSatisfy { key.test(item, $0) } : g.values.contains { key.test(item, $0) }
        }
    }
}

/// Shell-style patterns as Go's path.Match reads them: `*` and `?` do not cross "/".
func globMatch(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern), t = Array(text)
    func match(_ i: Int, _ j: Int) -> Bool {
        if i == p.count { return j == t.count }
        switch p[i] {
        case "*":
            var k = j
            while true {
                if match(i + 1, k) { return true }
                guard k < t.count, t[k] != "/" else { return false }
                k += 1
            }
        case "?":
            return j < t.count && t[j] != "/" && match(i + 1, j + 1)
        default:
            return j < t.count && p[i] == t[j] && match(i + 1, j + 1)
        }
    }
    return match(0, 0)
}

/// A point in time as docker's `--since`/`--until` take it: RFC 3339, a Unix
/// time (seconds, with a fraction), a date, or a duration back from now ("10m", "1h30m").
enum TimeArgument {
    static func parse(_ text: String, flag: String, now: Timestamp = .now()) throws -> Timestamp {
        let s = text.trimmed
        // Unix seconds first: ten digits would also read as a (strange) date.
        if !s.isEmpty, s.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let v = Double(s), v.isFinite {
            let whole = v.rounded(.down)
            return Timestamp(seconds: Int64(whole), nanoseconds: Int32((v - whole) * 1e9))
        }
        if s.contains("-") {
            if let t = Timestamp(rfc3339: s) { return t }
            if let t = Timestamp(rfc3339: s + "Z") { return t }
            if s.count == 10, let t = Timestamp(rfc3339: s + "T00:00:00Z") { return t }
        }
        if s.last?.isLetter == true, let d = Durations.parse(s) {
            let back = now.secondsSince1970 - d
            let whole = back.rounded(.down)
            return Timestamp(seconds: Int64(whole), nanoseconds: Int32((back - whole) * 1e9))
        }
        throw HakoError(.failed, "invalid \(flag) \"\(text)\": expected a time (2026-01-02T15:04:05Z, a Unix time) or a duration back from now (10m, 1h30m)")
    }
}

extension Filters where Item == Container {
    /// `ps --filter`: the keys docker's takes. `ancestor`, `network` and
    /// `volume` need the engine.
    static func containers(_ args: [String], engine: Engine) throws -> Filters<Container> {
        let statuses = ["created", "restarting", "running", "removing", "paused", "exited", "dead"]
        func imageIDs(_ ref: String) -> Set<String> {
            guard let image = try? engine.images.find(ref) else { return [] }
            return [image.id]
        }
        var ancestorCache: [String: Set<String>] = [:]
        var keys: [String: Key] = [
            "id": Key { c, v in c.id.hasPrefix(v.lowercased()) },
            "name": Key { c, v in c.name == v || c.name.contains(v) },
            "label": Key(requiresAll: true) { c, v in LabelMatch(parsing: v).matches(c.config.labels) },
            "status": Key(validate: { v in
                guard statuses.contains(v) else { throw HakoError(.failed, "invalid filter 'status=\(v)' (one of \(statuses.joined(separator: ", ")))") }
            }) { c, v in c.status.rawValue == v },
            "exited": Key(validate: { v in
                guard Int32(v) != nil else { throw HakoError(.failed, "invalid filter 'exited=\(v)': an exit code") }
            }) { c, v in c.status == .exited && Int32(v) == c.exitCode },
            "ancestor": Key { c, v in
                if c.config.image == v || c.config.imageID.hasPrefix(v.hasPrefix("sha256:") ? String(v.dropFirst(7)) : v) && v.count >= 4 { return true }
                let ids = ancestorCache[v] ?? imageIDs(v)
                ancestorCache[v] = ids
                return ids.contains(c.config.imageID)
            },
            "network": Key { c, v in
                let names = c.config.networkMode == .bridge
                    ? ((c.config.networking?.networks ?? []).map(\.name).nilIfEmpty ?? [NetworkDefinition.defaultName])
                    : [c.config.networkMode.rawValue]
                if names.contains(v) { return true }
                guard let d = try? engine.findNetwork(v) else { return false }
                return names.contains(d.name)
            },
            "volume": Key { c, v in
                (c.config.storage?.mounts ?? []).contains { ($0.kind == .volume && $0.source == v) || $0.target == v }
            },
            // Docker's: a container's health, "none" without a check or when it is not running.
            "health": Key(validate: { v in
                guard ["starting", "healthy", "unhealthy", "none"].contains(v) else {
                    throw HakoError(.failed, "invalid filter 'health=\(v)' (one of starting, healthy, unhealthy, none)")
                }
            }) { c, v in (c.isRunning ? (c.state?.health?.status ?? "none") : "none") == v },
        ]
        keys["before"] = Key { c, v in
            guard let other = try? engine.lookup(v) else { return false }
            return c.config.created < other.config.created
        }
        keys["since"] = Key { c, v in
            guard let other = try? engine.lookup(v) else { return false }
            return other.config.created < c.config.created
        }
        return try Filters(args, keys: keys)
    }
}

extension Filters where Item == Image {
    /// `images --filter`: dangling, label, reference, before, since.
    static func images(_ args: [String], engine: Engine) throws -> Filters<Image> {
        func created(_ ref: String) throws -> Timestamp {
            guard let image = try engine.images.find(ref) else { throw HakoError(.failed, "no such image: \(ref)") }
            return image.created ?? Timestamp(seconds: 0)
        }
        let keys: [String: Key] = [
            "dangling": Key(validate: { v in
                guard v == "true" || v == "false" || v == "1" || v == "0" else {
                    throw HakoError(.failed, "invalid filter 'dangling=\(v)' (true or false)")
                }
            }) { i, v in i.references.isEmpty == (v == "true" || v == "1") },
            "label": Key(requiresAll: true) { i, v in LabelMatch(parsing: v).matches(i.config.labels ?? [:]) },
            "reference": Key { i, v in
                i.references.contains { r in
                    let short = ImageFilterNames.familiar(r)
                    let repo = short.split(separator: ":").dropLast().joined(separator: ":")
                    return globMatch(v, short) || globMatch(v, r) || (!v.contains(":") && globMatch(v, repo))
                }
            },
            "before": Key(validate: { v in _ = try created(v) }) { i, v in
                guard let t = try? created(v), let c = i.created else { return false }
                return c < t
            },
            "since": Key(validate: { v in _ = try created(v) }) { i, v in
                guard let t = try? created(v), let c = i.created else { return false }
                return t < c
            },
        ]
        return try Filters(args, keys: keys)
    }
}

enum ImageFilterNames {
    /// "docker.io/library/alpine:3" → "alpine:3", as docker shows names.
    static func familiar(_ r: String) -> String {
        var s = r
        if s.hasPrefix("docker.io/") { s.removeFirst(10) }
        if s.hasPrefix("library/") { s.removeFirst(8) }
        return s
    }
}

extension Array {
    var nilIfEmpty: [Element]? { isEmpty ? nil : self }
}
