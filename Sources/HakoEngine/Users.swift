#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// The user a container process runs as, resolved from `-u` and the
/// container's own /etc/passwd and /etc/group.
public struct ResolvedUser: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]
    public var home: String
}

public enum UserResolver {
    /// A passwd or group line split into its fields; nil for blanks and comments.
    static func fields(_ line: Substring) -> [Substring]? {
        if line.isEmpty || line.hasPrefix("#") { return nil }
        return line.split(separator: ":", omittingEmptySubsequences: false)
    }

    /// `spec` is "", "user", "uid", "user:group", "uid:gid" (any mix).
    /// Numbers need no entry in the files; names must be found there.
    public static func resolve(_ spec: String, passwd: String?, group: String?) throws -> ResolvedUser {
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let userPart = parts.first ?? ""
        let groupPart = parts.count > 1 ? parts[1] : nil
        if parts.count > 1 && groupPart?.isEmpty == true {
            throw HakoError(.invalidArgument("--user"), "invalid user \"\(spec)\": empty group")
        }
        let users = (passwd ?? "").split(separator: "\n").compactMap(fields).filter { $0.count >= 7 }
        let groupLines = (group ?? "").split(separator: "\n").compactMap(fields).filter { $0.count >= 3 }

        var uid: UInt32 = 0, gid: UInt32 = 0
        var home = "/"
        var userName: String?
        if userPart.isEmpty {
            if let root = users.first(where: { $0[2] == "0" }) { home = String(root[5]); userName = String(root[0]) }
        } else if let n = UInt32(userPart) {
            uid = n
            if let e = users.first(where: { UInt32($0[2]) == n }) {
                gid = UInt32(e[3]) ?? 0; home = String(e[5]); userName = String(e[0])
            }
        } else {
            guard let e = users.first(where: { $0[0] == userPart }), let u = UInt32(e[2]), let g = UInt32(e[3]) else {
                throw HakoError(.invalidArgument("--user"), "unable to find user \(userPart): no matching entries in passwd file")
            }
            uid = u; gid = g; home = String(e[5]); userName = userPart
        }
        if let gp = groupPart {
            if let n = UInt32(gp) { gid = n } else {
                guard let e = groupLines.first(where: { $0[0] == gp }), let g = UInt32(e[2]) else {
                    throw HakoError(.invalidArgument("--user"), "unable to find group \(gp): no matching entries in group file")
                }
                gid = g
            }
        }
        var groups: [UInt32] = []
        if groupPart == nil, let name = userName {
            for e in groupLines where e.count >= 4 {
                let members = e[3].split(separator: ",").map { $0.trimmed }
                if members.contains(name), let g = UInt32(e[2]), g != gid, !groups.contains(g) { groups.append(g) }
            }
        }
        if home.isEmpty { home = "/" }
        return ResolvedUser(uid: uid, gid: gid, groups: groups, home: home)
    }

    /// `--group-add`: group names (found in the container's /etc/group) or numbers.
    public static func groups(_ specs: [String], group: String?) throws -> [UInt32] {
        let lines = (group ?? "").split(separator: "\n").compactMap(fields).filter { $0.count >= 3 }
        return try specs.map { spec in
            if let n = UInt32(spec) { return n }
            guard let e = lines.first(where: { $0[0] == spec }), let g = UInt32(e[2]) else {
                throw HakoError(.invalidArgument("--group-add"), "unable to find group \(spec): no matching entries in group file")
            }
            return g
        }
    }

    /// Reads a file of the container's root filesystem from its layers (the
    /// container's upper dir first, then the image's layers from the top),
    /// resolving the path inside each layer.
    public static func readFromLayers(_ path: String, layers: [String]) -> String? {
        for layer in layers {
            guard let root = try? FileDescriptor.open(layer, O_RDONLY | O_DIRECTORY) else { continue }
            if let f = try? FileDescriptor.openInRoot(root, path, O_RDONLY), let bytes = try? f.readAll() {
                return String(decoding: bytes, as: UTF8.self)
            }
        }
        return nil
    }
}

/// `--env-file`: KEY=VALUE lines; `#` comments and blanks skipped; a bare KEY
/// takes the value from hako's own environment (as Docker does).
public enum EnvFile {
    public static func parse(_ text: String, lookup: (String) -> String? = { k in getenv(k).map { String(cString: $0) } }) throws -> [String] {
        var out: [String] = []
        for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline }).enumerated() {
            var line = String(raw)
            if line.hasSuffix("\r") { line.removeLast() }
            let t = line.trimmed
            if t.isEmpty || t.hasPrefix("#") { continue }
            if let eq = line.firstIndex(of: "=") {
                let key = String(line[..<eq]).trimmed
                guard !key.isEmpty, !key.contains(" ") else {
                    throw HakoError(.invalidArgument("--env-file"), "invalid env file line \(i + 1): \"\(line)\"")
                }
                out.append(key + "=" + line[line.index(after: eq)...])
            } else {
                guard !t.contains(" ") else { throw HakoError(.invalidArgument("--env-file"), "invalid env file line \(i + 1): variable \"\(t)\" contains whitespace") }
                if let v = lookup(t) { out.append("\(t)=\(v)") }
            }
        }
        return out
    }

    /// `--env` values as `KEY=VALUE`: a bare KEY takes the value from this
    /// process's environment (empty when set empty) and is dropped when unset, as Docker does.
    public static func passThrough(_ entries: [String]) throws -> [String] {
        var out: [String] = []
        for e in entries {
            if e.isEmpty || e.hasPrefix("=") { throw HakoError(.invalidArgument("--env"), "invalid environment variable \"\(e)\"") }
            if e.contains("=") { out.append(e) } else if let v = getenv(e) { out.append("\(e)=\(String(cString: v))") }
        }
        return out
    }

    /// Merges `KEY=VALUE` lists: later entries replace earlier ones with the same key.
    public static func merge(_ lists: [String]...) -> [String] {
        var order: [String] = []
        var values: [String: String] = [:]
        for list in lists {
            for e in list {
                let key = String(e.split(separator: "=", maxSplits: 1).first ?? "")
                if values[key] == nil { order.append(key) }
                values[key] = e
            }
        }
        return order.compactMap { values[$0] }
    }
}
