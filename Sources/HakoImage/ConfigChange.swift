import FoundationEssentials
import HakoSystem

/// `commit --change` and `import --change`: Dockerfile instructions applied
/// to an image config — CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL,
/// VOLUME, STOPSIGNAL, HEALTHCHECK. CMD and ENTRYPOINT take the JSON form (`["a","b"]`)
/// or the shell form (`a b`, run by `/bin/sh -c`).
public enum ConfigChange {
    public static func apply(_ changes: [String], to config: inout ImageConfig) throws(ImageError) {
        for change in changes { try apply(change, to: &config) }
    }

    static func apply(_ change: String, to c: inout ImageConfig) throws(ImageError) {
        let text = change.trimmed
        let split = text.firstIndex(where: { $0 == " " || $0 == "\t" })
        guard let split else { throw bad(change, "an instruction needs a value") }
        let keyword = text[..<split].uppercased()
        let value = String(text[split...]).trimmed
        guard !value.isEmpty else { throw bad(change, "\(keyword) needs a value") }
        switch keyword {
        case "CMD": c.cmd = try command(value, change)
        case "ENTRYPOINT": c.entrypoint = try command(value, change)
        case "WORKDIR":
            guard value.hasPrefix("/") else { throw bad(change, "WORKDIR must be an absolute path") }
            c.workingDir = value
        case "USER": c.user = value
        case "STOPSIGNAL": c.stopSignal = value
        case "HEALTHCHECK": c.healthcheck = try healthcheck(value, change)
        case "ENV":
            var env = c.env ?? []
            for (k, v) in try pairs(value, change, allowSpaceForm: true) {
                env.removeAll { $0.hasPrefix(k + "=") }
                env.append(k + "=" + v)
            }
            c.env = env
        case "LABEL":
            var labels = c.labels ?? [:]
            for (k, v) in try pairs(value, change, allowSpaceForm: false) { labels[k] = v }
            c.labels = labels
        case "EXPOSE":
            var ports = Set(c.exposedPorts ?? [])
            for p in value.split(separator: " ").map(String.init) where !p.isEmpty {
                let parts = p.split(separator: "/", omittingEmptySubsequences: false)
                guard (1...2).contains(parts.count), let n = UInt16(parts[0]), n > 0 else { throw bad(change, "invalid port \"\(p)\"") }
                let proto = parts.count == 2 ? parts[1].lowercased() : "tcp"
                guard ["tcp", "udp", "sctp"].contains(proto) else { throw bad(change, "invalid protocol in \"\(p)\"") }
                ports.insert("\(n)/\(proto)")
            }
            c.exposedPorts = ports.sorted()
        case "VOLUME":
            var volumes = Set(c.volumes ?? [])
            let list: [String] = value.hasPrefix("[") ? try jsonArray(value, change) : value.split(separator: " ").map(String.init)
            for v in list where !v.isEmpty {
                guard v.hasPrefix("/") else { throw bad(change, "VOLUME paths must be absolute") }
                volumes.insert(v)
            }
            c.volumes = volumes.sorted()
        default:
            throw bad(change, "unknown instruction \(keyword) (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL, HEALTHCHECK)")
        }
    }

    private static func bad(_ change: String, _ why: String) -> ImageError {
        .invalidChange("invalid --change \"\(change)\": \(why)")
    }

    private static func command(_ value: String, _ change: String) throws(ImageError) -> [String] {
        if value.hasPrefix("[") { return try jsonArray(value, change) }
        return ["/bin/sh", "-c", value]
    }

    /// `NONE`, or `[--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D] [--retries=N] CMD command`
    /// (the command in JSON form runs as it is, in shell form through `/bin/sh -c`).
    private static func healthcheck(_ value: String, _ change: String) throws(ImageError) -> HealthCheck {
        if value.uppercased() == "NONE" { return HealthCheck(test: .none) }
        var check = HealthCheck(test: .inherit)
        var rest = Substring(value)
        while rest.hasPrefix("--") {
            let word = rest.prefix { $0 != " " && $0 != "\t" }
            rest = rest.dropFirst(word.count).drop { $0 == " " || $0 == "\t" }
            guard let eq = word.firstIndex(of: "=") else { throw bad(change, "HEALTHCHECK option \(word) needs a value (--name=value)") }
            let name = word[word.index(word.startIndex, offsetBy: 2)..<eq], v = String(word[word.index(after: eq)...])
            if name == "retries" {
                guard let n = Int(v) else { throw bad(change, "invalid --retries \"\(v)\"") }
                check.retries = n
                continue
            }
            guard let d = GoDuration.parse(v) else { throw bad(change, "invalid --\(name) \"\(v)\" (a duration such as 30s, 1m30s, 500ms)") }
            switch name {
            case "interval": check.interval = d
            case "timeout": check.timeout = d
            case "start-period": check.startPeriod = d
            case "start-interval": check.startInterval = d
            default: throw bad(change, "unknown HEALTHCHECK option --\(name) (interval, timeout, start-period, start-interval, retries)")
            }
        }
        let split = rest.firstIndex(where: { $0 == " " || $0 == "\t" })
        guard let split, rest[..<split].uppercased() == "CMD" else { throw bad(change, "HEALTHCHECK takes NONE or [OPTIONS] CMD command") }
        let command = String(rest[split...]).trimmed
        guard !command.isEmpty else { throw bad(change, "HEALTHCHECK CMD needs a command") }
        check.test = command.hasPrefix("[") ? .exec(try jsonArray(command, change)) : .shell(command)
        do { try check.validate() } catch { throw bad(change, error.description.replacing("--health-", with: "--")) }
        return check
    }

    private static func jsonArray(_ value: String, _ change: String) throws(ImageError) -> [String] {
        guard let list = try? JSONDecoder().decode([String].self, from: Data(value.utf8)) else {
            throw bad(change, "not a JSON array of strings")
        }
        return list
    }

    /// `k=v k2="v 2"` (quotes allowed), or for ENV the old `KEY value` form.
    private static func pairs(_ value: String, _ change: String, allowSpaceForm: Bool) throws(ImageError) -> [(String, String)] {
        let firstSpace = value.firstIndex(of: " ")
        let firstEq = value.firstIndex(of: "=")
        if allowSpaceForm, let sp = firstSpace, firstEq.map({ $0 > sp }) ?? true {
            return [(String(value[..<sp]), String(value[sp...]).trimmed)]
        }
        var out: [(String, String)] = []
        var rest = Substring(value)
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " }
            if rest.isEmpty { break }
            guard let eq = rest.firstIndex(of: "=") else { throw bad(change, "expected KEY=VALUE") }
            let key = String(rest[..<eq])
            guard !key.isEmpty, !key.contains(" ") else { throw bad(change, "expected KEY=VALUE") }
            rest = rest[rest.index(after: eq)...]
            var v = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var closed = false
                while let ch = rest.first {
                    rest = rest.dropFirst()
                    if ch == "\\", let n = rest.first { v.append(n); rest = rest.dropFirst(); continue }
                    if ch == "\"" { closed = true; break }
                    v.append(ch)
                }
                guard closed else { throw bad(change, "unterminated quote") }
            } else {
                let word = rest.prefix { $0 != " " }
                v = String(word)
                rest = rest.dropFirst(word.count)
            }
            out.append((key, v))
        }
        return out
    }
}
