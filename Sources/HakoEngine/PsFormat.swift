#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// The table `hako top CONTAINER [ps OPTIONS]` prints: the columns procps'
/// `ps` would print for those options, computed from /proc of the container's
/// processes (`ContainerProcess`), never by running ps. Docker runs the host's
/// ps with the options and keeps the container's rows; the same options give
/// the same columns here.
///
/// Options, as procps reads them: UNIX (`-e -A -a -d -N -f -F -l -y -j -H -w
/// -o FMT`, clustered: `-ef`, `-eo pid,comm`), BSD (`a u x l j v w e f h r o
/// FMT`, clustered: `aux`, `axjf`), GNU (`--format FMT`, `--no-headers`).
/// Every process of the container is shown whatever the selection letters
/// say (they all select "every process" of a container); selecting by pid,
/// user or command (`-p`, `-u`, `-C` …) is refused as not done here.
public struct PsFormat: Sendable {
    public struct Column: Sendable {
        public var header: String
        let field: Field
    }

    public var columns: [Column]
    /// BSD `h`, `--no-headers`.
    public var showHeader = true
    /// BSD `r`: running processes alone.
    public var runningOnly = false

    /// The value of one column for one process, `now` in seconds since the epoch,
    /// `memoryKiB` the host's memory (for %MEM).
    public func cell(_ c: Column, _ p: ContainerProcess, now: Double, memoryKiB: Double) -> String {
        c.field.render(p, now, memoryKiB)
    }

    /// Header (unless turned off) and one row per process.
    public func table(_ processes: [ContainerProcess], now: Double, memoryKiB: Double = PsFormat.hostMemoryKiB()) -> [[String]] {
        let rows = processes.filter { !runningOnly || $0.state == "R" }.map { p in columns.map { cell($0, p, now: now, memoryKiB: memoryKiB) } }
        // procps: no header line when every header is empty (-o pid= -o comm=).
        return showHeader && columns.contains(where: { !$0.header.isEmpty }) ? [columns.map(\.header)] + rows : rows
    }

    public static func hostMemoryKiB() -> Double {
        Double(max(1, sysconf(Int32(_SC_PHYS_PAGES)) * sysconf(Int32(_SC_PAGESIZE)))) / 1024
    }

    // MARK: - options

    public static func parse(_ options: [String]) throws -> PsFormat {
        // docker top's default.
        let options = options.isEmpty ? ["-ef"] : options
        var custom: [Column] = []
        var unix = Set<Character>(), bsd = Set<Character>()
        var format = PsFormat(columns: [])
        var i = 0
        func value(after o: String, _ rest: Substring) throws -> String {
            if !rest.isEmpty { return String(rest) }
            i += 1
            guard i < options.count else { throw PsError("option \(o) needs a list of fields") }
            return options[i]
        }
        while i < options.count {
            let o = options[i]
            if o.hasPrefix("--") {
                let (name, inline) = o.firstIndex(of: "=").map { (String(o[..<$0]), String(o[o.index(after: $0)...])) } ?? (o, "")
                switch name {
                case "--format", "--formatting":
                    custom += try fields(inline.isEmpty ? value(after: name, "") : inline)
                case "--no-headers", "--no-heading": format.showHeader = false
                case "--forest", "--cols", "--columns", "--width", "--lines", "--rows":
                    if name != "--forest" && inline.isEmpty { _ = try value(after: name, "") }
                case "--pid", "--ppid", "--user", "--group", "--sid", "--tty", "--quick-pid", "--sort":
                    throw PsError("option \(name) is not supported: hako top shows every process of the container")
                default: throw PsError("unknown option \(o)")
                }
            } else if o.hasPrefix("-") && o != "-" {
                var letters = o.dropFirst()
                // procps reads "-aux" as the BSD "aux" (and warns).
                if letters.contains("u") && !letters.contains("o") && letters.allSatisfy({ "aux".contains($0) }) {
                    bsd.formUnion(letters)
                    i += 1
                    continue
                }
                while let c = letters.first {
                    letters = letters.dropFirst()
                    switch c {
                    case "e", "A", "a", "d", "N", "H", "w", "M", "Z":
                        break  // selections of every process, forest, width: the same table here
                    case "f", "F", "l", "j", "y", "c", "L", "T", "m":
                        unix.insert(c)
                    case "o", "O":
                        custom += try fields(try value(after: "-\(c)", letters))
                        letters = ""
                    case "p", "q", "u", "U", "g", "G", "C", "s", "t":
                        throw PsError("option -\(c) is not supported: hako top shows every process of the container")
                    default:
                        throw PsError("unknown option -\(c)")
                    }
                }
            } else {
                var letters = Substring(o)
                while let c = letters.first {
                    letters = letters.dropFirst()
                    switch c {
                    case "a", "x", "g", "w", "e", "f", "c", "n", "S", "T": break
                    case "h": format.showHeader = false
                    case "r": format.runningOnly = true
                    case "u", "l", "j", "v", "s", "X": bsd.insert(c)
                    case "o", "O":
                        custom += try fields(try value(after: String(c), letters))
                        letters = ""
                    case "p", "U", "t", "q", "k":
                        throw PsError("option \(c) is not supported: hako top shows every process of the container")
                    default:
                        throw PsError("unknown option \(c) in \"\(o)\"")
                    }
                }
                // A BSD option alone (ax, x) prints the BSD default columns.
                if bsd.isEmpty { bsd.insert("-") }
            }
            i += 1
        }
        if !custom.isEmpty {
            format.columns = custom
        } else if let names = unixColumns(unix) {
            format.columns = try names.map(column)
        } else if let names = try bsdColumns(bsd) {
            format.columns = try names.map(column)
        } else {
            format.columns = try ["pid", "tname", "time", "cmd"].map(column)
        }
        return format
    }

    static func unixColumns(_ u: Set<Character>) -> [String]? {
        let long = u.contains("l"), full = u.contains("f") || u.contains("F"), jobs = u.contains("j")
        if u.contains("F") {
            return ["uname:UID", "pid", "ppid", "c", "sz", "rss", "psr", "stime", "tname", "time", "cmd"]
        }
        if long {
            var c = u.contains("y") ? ["s", "uid", "pid", "ppid", "c", "lpri", "ni", "rss", "sz", "wchan"]
                                    : ["f", "s", "uid", "pid", "ppid", "c", "lpri", "ni", "addr", "sz", "wchan"]
            if full {
                c = c.map { $0 == "uid" ? "uname:UID" : $0 }
                c.append("stime")
            }
            return c + ["tname", "time", "cmd"]
        }
        if full && jobs { return ["uname:UID", "pid", "ppid", "pgid", "sid", "c", "stime", "tname", "time", "cmd"] }
        if full { return ["uname:UID", "pid", "ppid", "c", "stime", "tname", "time", "cmd"] }
        if jobs { return ["pid", "pgid", "sid", "tname", "time", "cmd"] }
        return nil
    }

    static func bsdColumns(_ b: Set<Character>) throws -> [String]? {
        if b.contains("u") { return ["user", "pid", "%cpu", "%mem", "vsz", "rss", "tname:TTY", "stat", "start", "time", "command"] }
        if b.contains("l") { return ["f", "uid", "pid", "ppid", "priority:PRI", "ni", "vsz", "rss", "wchan", "stat", "tname:TTY", "time", "command"] }
        if b.contains("j") { return ["ppid", "pid", "pgid", "sid", "tname:TTY", "tpgid", "stat", "uid", "time", "command"] }
        if b.contains("v") { return ["pid", "tname:TTY", "stat", "time", "majflt", "trs", "drs", "rss", "%mem", "command"] }
        if b.contains("s") || b.contains("X") { throw PsError("the signal (s) and register (X) formats are not supported; choose fields with -o") }
        if !b.isEmpty { return ["pid", "tname:TTY", "stat", "time", "command"] }
        return nil
    }

    /// "name" or "name:HEADER" of the built-in formats.
    static func column(_ spec: String) throws -> Column {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard var c = Field.named(parts[0]) else { throw PsError("unknown field \"\(parts[0])\"") }
        if parts.count == 2 { c.header = parts[1] }
        return c
    }

    /// A -o list: names separated by commas or spaces; "name=HEADER" takes the
    /// rest of the list as the header (an empty header too), as procps does.
    static func fields(_ list: String) throws -> [Column] {
        var out: [Column] = []
        var rest = Substring(list)
        while !rest.isEmpty {
            rest = rest.drop { $0 == "," || $0 == " " }
            guard !rest.isEmpty else { break }
            let end = rest.firstIndex { $0 == "," || $0 == " " || $0 == "=" } ?? rest.endIndex
            let name = String(rest[..<end])
            guard var c = Field.named(name) else { throw PsError("unknown field \"\(name)\"") }
            if end < rest.endIndex, rest[end] == "=" {
                c.header = String(rest[rest.index(after: end)...])
                out.append(c)
                break
            }
            out.append(c)
            rest = rest[end...]
        }
        guard !out.isEmpty else { throw PsError("no fields chosen") }
        return out
    }
}

public struct PsError: Error, CustomStringConvertible {
    public var description: String
    init(_ message: String) { description = "ps: " + message }
}

/// One ps field: its default header and how a process shows in it.
struct Field: Sendable {
    let render: @Sendable (ContainerProcess, Double, Double) -> String

    static func named(_ name: String) -> PsFormat.Column? {
        func col(_ header: String, _ r: @escaping @Sendable (ContainerProcess, Double, Double) -> String) -> PsFormat.Column {
            PsFormat.Column(header: header, field: Field(render: r))
        }
        switch name.lowercased() {
        case "pid", "tgid": return col("PID") { p, _, _ in String(p.pid) }
        case "ppid": return col("PPID") { p, _, _ in String(p.ppid) }
        case "pgid", "pgrp": return col("PGID") { p, _, _ in String(p.pgid) }
        case "sid", "sess", "session": return col("SID") { p, _, _ in String(p.sid) }
        case "tpgid": return col("TPGID") { p, _, _ in String(p.tpgid) }
        case "uid", "euid": return col("UID") { p, _, _ in String(p.uid) }
        case "ruid": return col("RUID") { p, _, _ in String(p.ruid) }
        case "gid", "egid": return col("GID") { p, _, _ in String(p.gid) }
        case "rgid": return col("RGID") { p, _, _ in String(p.rgid) }
        case "user", "euser", "uname": return col("USER") { p, _, _ in p.user }
        case "ruser": return col("RUSER") { p, _, _ in p.realUser }
        case "group", "egroup": return col("GROUP") { p, _, _ in p.group }
        case "c", "cp": return col("C") { p, now, _ in String(Int(cpuPercent(p, now))) }
        case "%cpu", "pcpu": return col("%CPU") { p, now, _ in fixed1(cpuPercent(p, now)) }
        case "%mem", "pmem": return col("%MEM") { p, _, mem in fixed1(Double(p.rssKiB) / mem * 100) }
        case "stime", "start_time": return col("STIME") { p, now, _ in startTime(p, now) }
        case "start": return col("START") { p, now, _ in startTime(p, now) }
        case "lstart": return col("STARTED") { p, _, _ in longTime(p.started.seconds) }
        case "tty", "tt": return col("TT") { p, _, _ in p.tty }
        case "tname": return col("TTY") { p, _, _ in p.tty }
        case "time", "cputime": return col("TIME") { p, _, _ in clock(p.cpuSeconds) }
        case "times", "cputimes": return col("TIME") { p, _, _ in String(Int(p.cpuSeconds)) }
        case "etime": return col("ELAPSED") { p, now, _ in clock(max(0, now - p.started.secondsSince1970), minutes: true) }
        case "etimes": return col("ELAPSED") { p, now, _ in String(Int(max(0, now - p.started.secondsSince1970))) }
        case "cmd": return col("CMD") { p, _, _ in commandLine(p) }
        case "args", "command": return col("COMMAND") { p, _, _ in commandLine(p) }
        case "comm", "ucomm", "ucmd": return col("COMMAND") { p, _, _ in p.state == "Z" ? p.command + " <defunct>" : p.command }
        case "stat": return col("STAT") { p, _, _ in bsdState(p) }
        case "s", "state": return col("S") { p, _, _ in p.state }
        case "rss", "rssize", "rsz": return col("RSS") { p, _, _ in String(p.rssKiB) }
        case "vsz", "vsize": return col("VSZ") { p, _, _ in String(p.vszKiB) }
        case "sz": return col("SZ") { p, _, _ in String(p.vszKiB / 4) }
        case "trs": return col("TRS") { p, _, _ in String(p.textKiB) }
        case "drs": return col("DRS") { p, _, _ in String(p.vszKiB > p.textKiB ? p.vszKiB - p.textKiB : 0) }
        case "nlwp", "thcount": return col("NLWP") { p, _, _ in String(p.threads) }
        case "ni", "nice": return col("NI") { p, _, _ in p.policy == 0 || p.policy == 3 || p.policy == 5 ? String(p.nice) : "-" }
        // procps' three priorities: "pri" (higher is more urgent), -l's PRI, the kernel's own.
        case "pri": return col("PRI") { p, _, _ in String(39 - p.priority) }
        case "lpri", "opri": return col("PRI") { p, _, _ in String(p.priority + 60) }
        case "priority", "pri_api": return col("PRI") { p, _, _ in String(p.priority) }
        case "rtprio": return col("RTPRIO") { p, _, _ in p.policy == 1 || p.policy == 2 ? String(p.rtPriority) : "-" }
        case "cls", "class", "policy":
            return col("CLS") { p, _, _ in
                let names = ["TS", "FF", "RR", "B", "ISO", "IDL", "DLN"]
                return p.policy >= 0 && p.policy < names.count ? names[p.policy] : "?"
            }
        case "f", "flag", "flags": return col("F") { p, _, _ in String((p.flags >> 6) & 0x5) }
        case "wchan": return col("WCHAN") { p, _, _ in p.wchan.isEmpty ? "-" : p.wchan }
        case "addr": return col("ADDR") { _, _, _ in "-" }
        case "psr", "cpuid": return col("PSR") { p, _, _ in String(p.processor) }
        case "majflt", "maj_flt": return col("MAJFL") { p, _, _ in String(p.majorFaults) }
        case "minflt", "min_flt": return col("MINFL") { p, _, _ in String(p.minorFaults) }
        default: return nil
        }
    }

    /// The whole command line; [comm] without one (a kernel thread, a zombie).
    static func commandLine(_ p: ContainerProcess) -> String {
        if p.state == "Z" { return "[\(p.command)] <defunct>" }
        return p.args.isEmpty ? "[\(p.command)]" : p.args.joined(separator: " ")
    }

    /// BSD STAT: the state and its modifiers (< high priority, N low, s session
    /// leader, l multi-threaded, + in the foreground process group).
    static func bsdState(_ p: ContainerProcess) -> String {
        var s = p.state
        if p.nice < 0 { s += "<" } else if p.nice > 0 { s += "N" }
        if p.sid == p.pid { s += "s" }
        if p.threads > 1 { s += "l" }
        if p.tpgid >= 0 && p.tpgid == p.pgid { s += "+" }
        return s
    }

    static func cpuPercent(_ p: ContainerProcess, _ now: Double) -> Double {
        let elapsed = now - p.started.secondsSince1970
        return elapsed > 0 ? p.cpuSeconds / elapsed * 100 : 0
    }

    static func fixed1(_ v: Double) -> String {
        let t = Int((v * 10).rounded())
        return "\(t / 10).\(t % 10)"
    }

    static func two(_ v: Int) -> String { v < 10 ? "0\(v)" : String(v) }

    /// HH:MM within a day, else MonDD, as ps prints a start time (local time).
    static func startTime(_ p: ContainerProcess, _ now: Double) -> String {
        var t = time_t(p.started.seconds)
        var tm = Glibc.tm()
        localtime_r(&t, &tm)
        if now - p.started.secondsSince1970 < 86400 { return "\(two(Int(tm.tm_hour))):\(two(Int(tm.tm_min)))" }
        return "\(months[Int(tm.tm_mon) % 12])\(two(Int(tm.tm_mday)))"
    }

    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// lstart: "Sun Dec  6 07:05:31 2026" (local time).
    static func longTime(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var tm = Glibc.tm()
        localtime_r(&t, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let day = tm.tm_mday < 10 ? " \(tm.tm_mday)" : String(tm.tm_mday)
        return "\(days[Int(tm.tm_wday) % 7]) \(months[Int(tm.tm_mon) % 12]) \(day) \(two(Int(tm.tm_hour))):\(two(Int(tm.tm_min))):\(two(Int(tm.tm_sec))) \(Int(tm.tm_year) + 1900)"
    }

    /// TIME: [DD-]HH:MM:SS; ELAPSED: [[DD-]HH:]MM:SS.
    static func clock(_ seconds: Double, minutes: Bool = false) -> String {
        let s = Int(seconds)
        let days = s / 86400, hours = s / 3600 % 24
        if minutes {
            let ms = "\(two(s / 60 % 60)):\(two(s % 60))"
            if days > 0 { return "\(days)-\(two(hours)):" + ms }
            return hours > 0 ? "\(two(hours)):" + ms : ms
        }
        let text = "\(two(hours)):\(two(s / 60 % 60)):\(two(s % 60))"
        return days > 0 ? "\(days)-\(text)" : text
    }
}
