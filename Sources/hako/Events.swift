import HakoCLI
#if canImport(Glibc)
import Glibc
#endif
import HakoCluster
import HakoEngine
import HakoSystem

/// `hako events`: the engine's container events, as `docker events`.
struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Show container events (create, start, stop, kill, die, pause, unpause, restart, destroy); streams until --until.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long("since"), help: "Events from this time: RFC 3339, Unix seconds, or a duration ago (10m).") var since: String?
    @Option(name: .long("until"), help: "Events up to this time (same forms); then exit instead of streaming.") var until: String?
    @Option(name: [.short("f"), .long("filter")], help: "container=NAME|ID, event=ACTION, image=REF, label=KEY[=VALUE], type=container (repeatable).")
    var filter: [String] = []
    @Option(name: .long("format"), help: "Output format: table, json (one object per line), or a Go template.") var format = "table"

    func run() throws {
        let output = try OutputFormat(parsing: format)
        let filters = try EventFilter(parsing: filter)
        let from = try since.map { try Events.time($0, flag: "--since") }
        let to = try until.map { try Events.time($0, flag: "--until") }
        let engine = try global.engine()
        var follower = engine.eventFollower()
        // The replay ends where the follower starts: no event twice.
        for e in engine.eventLog.read(since: from, until: to, upTo: follower.offset) where filters.matches(e) { try show(e, output) }
        guard to == nil || (to ?? 0) > Timestamp.now().secondsSince1970 else { return }
        while true {
            usleep(250_000)
            for e in engine.pollEvents(&follower) where filters.matches(e) {
                if let to, e.time > to { return }
                try show(e, output)
            }
            if let to, Timestamp.now().secondsSince1970 > to { return }
        }
    }

    func show(_ e: EngineEvent, _ output: OutputFormat) throws {
        switch output {
        case .json:
            print(e.json.serialized())
        case .template(let t, _):
            do { print(try t.render(try TemplateValue(json: e.json.serialized()))) } catch let x as TemplateError {
                throw HakoError(.failed, "--format: \(x)")
            }
        case .table:
            let t = Timestamp(seconds: Int64(e.time.rounded(.down)), nanoseconds: Int32(((e.time - e.time.rounded(.down)) * 1e9).rounded())).rfc3339
            let attrs = e.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
            print("\(t) \(e.type) \(e.action) \(e.id)\(attrs.isEmpty ? "" : " (\(attrs))")")
        }
        fflush(nil)  // a follower reads each line as it comes
    }

    /// RFC 3339, Unix seconds (with a fraction), or a duration before now.
    static func time(_ s: String, flag: String) throws -> Double {
        if let t = Timestamp(rfc3339: s) { return t.secondsSince1970 }
        if let x = Double(s), s.contains(".") || s.count >= 9 { return x }
        if let d = Durations.parse(s) { return Timestamp.now().secondsSince1970 - d }
        throw HakoError(.failed, "invalid \(flag) \"\(s)\": a time (2026-11-29T06:00:00Z, Unix seconds) or a duration (10m)")
    }
}
