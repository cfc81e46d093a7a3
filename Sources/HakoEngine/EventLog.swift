#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// Something that happened to a container, as `hako events` shows it
/// (Docker's actions: create, start, restart, stop, kill, die, pause, unpause, destroy).
public struct EngineEvent: Sendable, Equatable {
    public var time: Double
    public var type: String
    public var action: String
    public var id: String
    public var attributes: [String: String]

    public init(time: Double, type: String = "container", action: String, id: String, attributes: [String: String]) {
        self.time = time
        self.type = type
        self.action = action
        self.id = id
        self.attributes = attributes
    }

    public var json: JSON {
        .object([
            ("time", .number(String(format3(time)))), ("type", .string(type)), ("action", .string(action)), ("id", .string(id)),
            ("attributes", .object(attributes.sorted { $0.key < $1.key }.map { ($0.key, JSON.string($0.value)) })),
        ])
    }

    public init?(json j: JSON) {
        guard let time = j["time"]?.double, let type = j["type"]?.string, let action = j["action"]?.string, let id = j["id"]?.string else { return nil }
        var attrs: [String: String] = [:]
        for (k, v) in j["attributes"]?.members ?? [] { if let s = v.string { attrs[k] = s } }
        self.init(time: time, type: type, action: action, id: id, attributes: attrs)
    }
}

/// Milliseconds are enough for event times; "1764400000.123".
func format3(_ t: Double) -> String {
    let ms = Int64((t * 1000).rounded())
    let frac = ms % 1000
    return "\(ms / 1000).\(frac < 10 ? "00" : frac < 100 ? "0" : "")\(frac)"
}

/// The engine's event log: `<root>/events.jsonl`, one JSON object per line,
/// appended with O_APPEND by whichever hako process acts (lines are small, so
/// concurrent appends do not interleave). Bounded: past `maxBytes` the file
/// becomes `events.jsonl.1` (the one before is dropped). Written only when a
/// container is created, started, stopped, killed, paused or removed —
/// nothing periodic. Recording never fails an operation.
public struct EventLog: Sendable {
    public let path: String
    public let maxBytes: Int

    public init(path: String, maxBytes: Int = 1 << 20) {
        self.path = path
        self.maxBytes = maxBytes
    }

    public func record(_ e: EngineEvent) {
        let line = Array((e.json.serialized() + "\n").utf8)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, Int(st.st_size) + line.count > maxBytes {
            // Whoever sees the file full rotates it; a racing writer's line lands in either file.
            _ = rename(path, path + ".1")
            close(fd)
            let fresh = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fresh >= 0 else { return }
            _ = line.withUnsafeBytes { write(fresh, $0.baseAddress, $0.count) }
            close(fresh)
            return
        }
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Events in [since, until], oldest first, from the rotated file and the
    /// current one (its first `upTo` bytes: where a follower took over).
    public func read(since: Double? = nil, until: Double? = nil, upTo: Int? = nil) -> [EngineEvent] {
        var out: [EngineEvent] = []
        for p in [path + ".1", path] {
            guard let text = try? FS.readString(p) else { continue }
            let part = p == path ? upTo.map { String(decoding: text.utf8.prefix($0), as: UTF8.self) } ?? text : text
            out += EventLog.parse(part).filter { e in (since.map { e.time >= $0 } ?? true) && (until.map { e.time <= $0 } ?? true) }
        }
        return out
    }

    /// Complete lines of `text`; a line that is not an event is skipped.
    static func parse<S: StringProtocol>(_ text: S) -> [EngineEvent] {
        text.split(separator: "\n").compactMap { line in (try? JSON.parse(String(line))).flatMap(EngineEvent.init(json:)) }
    }

    /// The current file's size: where a follower starts reading.
    public func end() -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    /// Events appended since `offset` (complete lines only) and the new offset;
    /// after a rotation, from the start of the new file.
    public func read(from offset: Int) -> (events: [EngineEvent], offset: Int) {
        let size = end()
        let start = size < offset ? 0 : offset
        guard size > start else { return ([], start) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return ([], start) }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: size - start)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(start)) }
        guard n > 0 else { return ([], start) }
        let bytes = buf[0..<n]
        guard let lastNewline = bytes.lastIndex(of: 10) else { return ([], start) }
        let text = String(decoding: bytes[...lastNewline], as: UTF8.self)
        return (EventLog.parse(text), start + lastNewline + 1)
    }
}

/// `--filter` of `hako events`: values of one key are alternatives, keys must all match.
public struct EventFilter: Sendable {
    public var terms: [String: [String]] = [:]

    public init(parsing specs: [String]) throws {
        for spec in specs {
            guard let eq = spec.firstIndex(of: "="), !spec[..<eq].isEmpty, spec.index(after: eq) < spec.endIndex else {
                throw HakoError(.invalidArgument("--filter"), "invalid --filter \"\(spec)\": KEY=VALUE")
            }
            let key = String(spec[..<eq]), value = String(spec[spec.index(after: eq)...])
            guard ["container", "event", "image", "label", "type"].contains(key) else {
                throw HakoError(.invalidArgument("--filter"), "invalid --filter \"\(spec)\": container, event, image, label or type")
            }
            terms[key, default: []].append(value)
        }
    }

    public func matches(_ e: EngineEvent) -> Bool {
        for (key, values) in terms {
            let ok = values.contains { v in
                switch key {
                case "container": return e.id.hasPrefix(v) || e.attributes["name"] == v
                case "event": return e.action == v || e.action.hasPrefix(v + ":")  // "health_status: healthy"
                case "image": return e.attributes["image"] == v
                case "type": return e.type == v
                default:
                    if let eq = v.firstIndex(of: "=") { return e.attributes[String(v[..<eq])] == String(v[v.index(after: eq)...]) }
                    return e.attributes[v] != nil
                }
            }
            if !ok { return false }
        }
        return true
    }
}
