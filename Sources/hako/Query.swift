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
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    for r in [header] + rows {
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
    @Option(name: .long("format"), help: "Output format: table or json (one object per line).") var format = "table"
    @Option(name: [.short("f"), .long("filter")], help: "Filter: health=starting|healthy|unhealthy|none.") var filter: [String] = []

    struct Row: Codable {
        var ID: String, Image: String, Command: String, CreatedAt: String, RunningFor: String
        var Status: String, State: String, Names: String, Ports: String, Labels: String
    }

    func run() throws {
        guard format == "table" || format == "json" else { throw HakoError(.failed, "unknown format \"\(format)\" (table or json)") }
        let engine = try global.engine()
        let health = try healthFilter(filter)
        let list = try engine.list().filter { (all || $0.isRunning || $0.status == .restarting) && matchesHealth($0, health) }
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
                       Labels: c.config.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
        }
        if format == "json" {
            for r in rows { print(try jsonLine(r)) }
            return
        }
        printTable(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"],
                   rows.map { [$0.ID, $0.Image, $0.Command, $0.RunningFor, $0.Status, $0.Ports, $0.Names] })
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

/// The values of `--filter health=…` (Docker's: starting, healthy, unhealthy, none); other keys are refused.
func healthFilter(_ specs: [String]) throws -> Set<String> {
    var values: Set<String> = []
    for spec in specs {
        guard spec.hasPrefix("health=") else { throw HakoError(.failed, "invalid --filter \"\(spec)\": the filter supported is health=…") }
        let v = String(spec.dropFirst(7))
        guard ["starting", "healthy", "unhealthy", "none"].contains(v) else {
            throw HakoError(.failed, "invalid --filter \"\(spec)\": health is starting, healthy, unhealthy or none")
        }
        values.insert(v)
    }
    return values
}

/// A container's health as the filter sees it: "none" without a check or when it is not running.
func matchesHealth(_ c: Container, _ values: Set<String>) -> Bool {
    guard !values.isEmpty else { return true }
    let status = c.isRunning ? (c.state?.health?.status ?? "none") : "none"
    return values.contains(status)
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show a container's output.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.short("f"), .long("follow")], help: "Follow the output.") var follow = false
    @Option(name: [.short("n"), .long("tail")], help: "Number of lines from the end (or \"all\").") var tail = "all"
    @Flag(name: [.short("t"), .long("timestamps")], help: "Show timestamps.") var timestamps = false
    @Argument(help: "CONTAINER") var container: String

    func run() throws {
        var n: Int?
        if tail != "all" {
            guard let v = Int(tail), v >= 0 else { throw HakoError(.failed, "invalid --tail \"\(tail)\"") }
            n = v
        }
        let engine = try global.engine()
        let c = try engine.lookup(container)
        var atLineStart = [true, true]
        LogReader(path: c.paths.log, maxFiles: c.config.logMaxFiles).read(tail: n, follow: follow, stillRunning: {
            (try? engine.lookup(c.id))?.isRunning ?? false
        }) { r in
            let s = r.stderr ? 1 : 0
            var out: [UInt8] = []
            if timestamps && atLineStart[s] { out += Array((r.time + " ").utf8) }
            out += r.text
            if r.endsLine { out.append(UInt8(ascii: "\n")) }
            atLineStart[s] = r.endsLine
            AttachSession.writeAll(r.stderr ? 2 : 1, out)
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show containers' configuration and state as JSON.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "CONTAINER...") var containers: [String]

    func run() throws {
        let engine = try global.engine()
        var out: [ContainerInspect] = []
        var failure: (any Error)?
        for r in containers {
            do { out.append(try engine.inspect(r)) } catch { failure = failure ?? error }
        }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try e.encode(out), as: UTF8.self))
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
