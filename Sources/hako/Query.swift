import HakoCLI
import FoundationEssentials
import HakoEngine
import HakoImage
import HakoSystem

/// Docker's human durations: "Less than a second", "3 seconds", "About a minute", "2 hours" …
func humanDuration(_ seconds: Double) -> String {
    let s = Int(seconds)
    switch s {
    case ..<1: return "Less than a second"
    case 1: return "1 second"
    case ..<60: return "\(s) seconds"
    case ..<120: return "About a minute"
    case ..<3600: return "\(s / 60) minutes"
    case ..<7200: return "About an hour"
    case ..<(48 * 3600): return "\(s / 3600) hours"
    case ..<(14 * 86400): return "\(s / 86400) days"
    case ..<(90 * 86400): return "\(s / (7 * 86400)) weeks"
    case ..<(730 * 86400): return "\(s / (30 * 86400)) months"
    default: return "\(s / (365 * 86400)) years"
    }
}

func ago(_ t: Timestamp) -> String { humanDuration(Timestamp.now().secondsSince1970 - t.secondsSince1970) + " ago" }

/// Prints rows as columns separated by at least three spaces.
func printTable(_ header: [String], _ rows: [[String]], header printHeader: Bool = true) {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    for r in (printHeader ? [header] : []) + rows {
        var line = ""
        for (i, c) in r.enumerated() {
            line += i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] + 3 - c.count)
        }
        print(line)
    }
}

func jsonLine<T: Encodable>(_ value: T) throws -> String {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try e.encode(value), as: UTF8.self)
}

struct Ps: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers (running ones unless -a).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("a"), .long("all")], help: "Show all containers.") var all = false
    @Flag(name: [.short("q"), .long("quiet")], help: "Only display container IDs.") var quiet = false
    @Flag(name: .long("no-trunc"), help: "Do not truncate output.") var noTrunc = false
    @Flag(name: [.short("l"), .long("latest")], help: "Show only the latest created container.") var latest = false
    @Option(name: [.short("n"), .long("last")], help: "Show the n last created containers (all states).") var last = -1
    @Option(name: [.short("f"), .long("filter")],
            help: "Filter: status=, name=, label=KEY[=VALUE], ancestor=, network=, volume=, id=, exited=, before=, since=, health=.") var filter: [String] = []
    @Option(name: .long("format"), help: "Output format: table, json (one object per line), or a Go template (table TEMPLATE for columns).") var format = "table"

    struct Row: Codable {
        var ID: String, Image: String, Command: String, CreatedAt: String, RunningFor: String
        var Status: String, State: String, Names: String, Ports: String, Labels: String
        var Networks: String, Mounts: String, LocalVolumes: String
    }

    static let headers = ["ID": "CONTAINER ID", "RunningFor": "CREATED", "CreatedAt": "CREATED AT", "LocalVolumes": "LOCAL VOLUMES"]

    func run() throws {
        let output = try OutputFormat(parsing: format)
        let engine = try global.engine()
        let filters = try Filters.containers(filter, engine: engine)
        // A status filter, -n or -l look at every container, as docker's do.
        let everything = all || filters.has("status") || filters.has("exited") || latest || last >= 0
        var list = try engine.list().filter { (everything || $0.isRunning || $0.status == .restarting) && filters.admits($0) }
        if latest { list = Array(list.prefix(1)) } else if last >= 0 { list = Array(list.prefix(last)) }
        if quiet {
            for c in list { print(noTrunc ? c.id : c.config.shortID) }
            return
        }
        let rows = list.map { c -> Row in
            let cmd = c.config.args.map { $0.contains(" ") ? "\"\($0)\"" : $0 }.joined(separator: " ")
            let command = noTrunc || cmd.count <= 20 ? "\"\(cmd)\"" : "\"\(cmd.prefix(19))…\""
            return Row(ID: noTrunc ? c.id : c.config.shortID, Image: c.config.image, Command: command,
                       CreatedAt: c.config.created.rfc3339, RunningFor: ago(c.config.created),
                       Status: status(c), State: c.status.rawValue, Names: c.name,
                       Ports: c.isRunning ? (engine.endpoint(c.id)?.ports.map(\.description).joined(separator: ", ") ?? "") : "",
                       Labels: c.config.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                       Networks: networks(c).joined(separator: ","),
                       Mounts: (c.config.storage?.mounts ?? []).map { $0.kind == .volume ? $0.source : $0.target }.joined(separator: ","),
                       LocalVolumes: String((c.config.storage?.mounts ?? []).filter { $0.kind == .volume }.count))
        }
        try output.print(rows, headers: Ps.headers) {
            printTable(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
                       rows.map { [$0.ID, $0.Image, $0.Command, $0.RunningFor, $0.Status, $0.Ports, $0.Names] })
        }
    }

    func networks(_ c: Container) -> [String] {
        guard c.config.networkMode == .bridge else { return [c.config.networkMode.rawValue] }
        let names = (c.config.networking?.networks ?? []).map(\.name)
        return names.isEmpty ? ["bridge"] : names
    }

    func status(_ c: Container) -> String {
        func since(_ s: String?) -> String {
            guard let s, let t = Timestamp(rfc3339: s) else { return "" }
            return humanDuration(Timestamp.now().secondsSince1970 - t.secondsSince1970)
        }
        switch c.status {
        case .created: return "Created"
        case .running: return "Up " + since(c.state?.startedAt) + healthSuffix(c)
        case .paused: return "Up \(since(c.state?.startedAt)) (Paused)"
        case .restarting: return "Restarting (\(c.exitCode)) \(since(c.state?.finishedAt)) ago"
        case .exited: return "Exited (\(c.exitCode)) \(since(c.state?.finishedAt)) ago"
        case .dead: return "Dead"
        }
    }
}

// MARK: health in `ps`

/// " (healthy)", " (unhealthy)", " (health: starting)", as Docker shows it; "" without a check.
func healthSuffix(_ c: Container) -> String {
    guard let h = c.state?.health else { return "" }
    return h.status == "starting" ? " (health: starting)" : " (\(h.status))"
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show a container's output.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("f"), .long("follow")], help: "Follow the output.") var follow = false
    @Option(name: [.short("n"), .long("tail")], help: "Number of lines from the end (or \"all\").") var tail = "all"
    @Flag(name: [.short("t"), .long("timestamps")], help: "Show timestamps.") var timestamps = false
    @Option(name: .long("since"), help: "Show logs since a time (2026-01-02T15:04:05Z, a Unix time) or for a duration back (10m).") var since: String?
    @Option(name: .long("until"), help: "Show logs before a time or a duration back (as --since).") var until: String?
    @Flag(name: .long("details"), help: "Show the extra attributes the log carries (--log-opt labels=, labels-regex=, env=, env-regex=) before each line.") var details = false
    @Argument(help: "CONTAINER") var container: String

    func run() throws {
        var n: Int?
        if tail != "all" {
            guard let v = Int(tail), v >= 0 else { throw HakoError(.failed, "invalid --tail \"\(tail)\"") }
            n = v
        }
        let from = try since.map { try TimeArgument.parse($0, flag: "--since") }
        let to = try until.map { try TimeArgument.parse($0, flag: "--until") }
        let engine = try global.engine()
        let c = try engine.lookup(container)
        var atLineStart = [true, true]
        let detailsPrefix = details ? Array(LogDetails.prefix(c.config.logAttributes).utf8) : []
        LogReader(path: c.paths.log, maxFiles: c.config.logMaxFiles).read(tail: n, since: from, until: to, follow: follow, stillRunning: {
            (try? engine.lookup(c.id))?.isRunning ?? false
        }) { r in
            let s = r.stderr ? 1 : 0
            var out: [UInt8] = []
            if timestamps && atLineStart[s] { out += Array((r.time + " ").utf8) }
            if atLineStart[s] { out += detailsPrefix }
            out += r.text
            if r.endsLine { out.append(UInt8(ascii: "\n")) }
            atLineStart[s] = r.endsLine
            AttachSession.writeAll(r.stderr ? 2 : 1, out)
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show containers, images, networks or volumes as JSON (or through a Go template).")
    @OptionGroup var global: GlobalOptions
    @Option(name: [.short("f"), .long("format")], help: "A Go template applied to each object ({{.State.Pid}}, {{json .Config}}).") var format = ""
    @Option(name: .long("type"), help: "Only look for this kind: container, image, network or volume.") var type: String?
    @Flag(name: [.short("s"), .long("size")], help: "Accepted for docker's sake (sizes are in system df).") var size = false
    @Argument(help: "NAME|ID...") var objects: [String]

    func run() throws {
        let kinds = ["container", "image", "network", "volume"]
        if let type, !kinds.contains(type) { throw HakoError(.failed, "\"\(type)\" is not a valid value for --type (container, image, network, volume)") }
        if !format.isEmpty { _ = try OutputFormat(parsing: format) }  // a template error before any lookup
        let engine = try global.engine()
        var out: [any Encodable] = []
        var failure: (any Error)?
        for r in objects {
            // As docker: a container first, then an image, a network, a volume. Only
            // "not this kind" (not found, or not a valid name of it) moves on; any
            // other failure is that object's answer.
            var found: (any Encodable)?
            var broken: (any Error)?
            for kind in type.map({ [$0] }) ?? kinds where found == nil && broken == nil {
                do {
                    switch kind {
                    case "container": found = try engine.inspect(r)
                    case "image": found = try engine.images.inspect(r)
                    case "network": found = try engine.inspectNetwork(r)
                    default: found = try engine.inspectVolume(r)
                    }
                } catch {
                    switch HakoError.kind(of: error) {
                    case .notFound, .invalidArgument: break
                    default: broken = error
                    }
                }
            }
            if let found { out.append(found) } else { failure = failure ?? broken ?? HakoError(.failed, "no such object: \(r)") }
        }
        try printInspected(out, format: format)
        if let failure { throw failure }
    }
}

func humanSize(_ n: Int64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var v = Double(n)
    var i = 0
    while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
    if i == 0 { return "\(n)B" }
    let digits = v < 10 ? 2 : 1
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (v * scale).rounded() / scale
    var text = String(rounded)
    if let dot = text.firstIndex(of: ".") {
        let decimals = text.distance(from: dot, to: text.endIndex) - 1
        if decimals < digits { text += String(repeating: "0", count: digits - decimals) }
    }
    return text + units[i]
}

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "doctor", abstract: "Check the kernel for what hako needs, and say how to fix what is missing.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long("format"), help: "Output format: table or json.") var format = "table"

    func run() throws {
        let checks = HakoEngine.Doctor.run(monitorPath: Engine.defaultMonitorPath)
        if format == "json" {
            for c in checks { print(try jsonLine(c)) }
        } else {
            for c in checks {
                let mark = c.level == .ok ? "ok  " : c.level == .warning ? "warn" : "FAIL"
                print("[\(mark)] \(c.name): \(c.detail)")
                if let fix = c.fix, c.level != .ok { print("       fix: \(fix)") }
            }
        }
        if checks.contains(where: { $0.level == .missing }) { throw ExitCode(1) }
    }
}
