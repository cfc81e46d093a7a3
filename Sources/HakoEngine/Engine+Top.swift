#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem

/// One process of a container, read from /proc (`hako top`).
public struct ContainerProcess: Sendable, Equatable {
    public var pid: Int32
    public var ppid: Int32
    /// Process group, session and the terminal's foreground process group.
    public var pgid: Int32 = 0
    public var sid: Int32 = 0
    public var tpgid: Int32 = -1
    /// Effective ids.
    public var uid: UInt32
    public var gid: UInt32
    /// Real ids.
    public var ruid: UInt32 = 0
    public var rgid: UInt32 = 0
    /// The uid's name in the container's /etc/passwd, else the number.
    public var user: String
    /// The real uid's name, and the effective gid's in the container's /etc/group.
    public var realUser: String = ""
    public var group: String = ""
    /// The kernel's flags word, priority (20 for nice 0), nice, scheduling
    /// policy and real-time priority, the CPU it last ran on.
    public var flags: UInt64 = 0
    public var priority: Int = 20
    public var nice: Int = 0
    public var policy: Int = 0
    public var rtPriority: Int = 0
    public var processor: Int = 0
    /// Page faults that needed no I/O, and those that did.
    public var minorFaults: UInt64 = 0
    public var majorFaults: UInt64 = 0
    /// Size of the text (code) segment in KiB.
    public var textKiB: UInt64 = 0
    /// Where it sleeps in the kernel (/proc/PID/wchan), "" when it does not.
    public var wchan: String = ""
    /// R, S, D, Z, T …
    public var state: String
    /// "pts/0", "tty1", or "?" without a terminal.
    public var tty: String
    /// User and system CPU time.
    public var cpuSeconds: Double
    public var started: Timestamp
    public var rssKiB: UInt64
    public var vszKiB: UInt64
    public var threads: Int
    /// The executable's name (comm) and the whole command line (empty for kernel threads and zombies).
    public var command: String
    public var args: [String]

    /// /proc/PID/stat and /proc/PID/status of one process, `bootTime` (seconds since
    /// the epoch), the clock ticks per second and the page size; nil if malformed.
    public static func parse(stat: String, status: String, cmdline: [UInt8], bootTime: Double, ticks: Double,
                             pageSize: UInt64) -> ContainerProcess? {
        guard let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")"),
              let pid = Int32(stat[..<open].trimmed) else { return nil }
        let comm = String(stat[stat.index(after: open)..<close])
        let f = stat[stat.index(after: close)...].split(separator: " ")
        guard f.count > 21, let ppid = Int32(f[1]), let ttyNr = Int64(f[4]), let utime = Double(f[11]), let stime = Double(f[12]),
              let threads = Int(f[17]), let start = Double(f[19]), let vsz = UInt64(f[20]), let rss = UInt64(f[21]) else { return nil }
        func ids(_ key: String) -> UInt32 {
            for line in status.split(separator: "\n") where line.hasPrefix(key) {
                let parts = line.dropFirst(key.count).split(whereSeparator: { $0 == "\t" || $0 == " " })
                if parts.count > 1, let v = UInt32(parts[1]) { return v }
            }
            return 0
        }
        func realID(_ key: String) -> UInt32 {
            for line in status.split(separator: "\n") where line.hasPrefix(key) {
                let parts = line.dropFirst(key.count).split(whereSeparator: { $0 == "\t" || $0 == " " })
                if let first = parts.first, let v = UInt32(first) { return v }
            }
            return 0
        }
        func number<T: FixedWidthInteger>(_ i: Int, _ fallback: T) -> T { i < f.count ? T(f[i]) ?? fallback : fallback }
        let uid = ids("Uid:"), gid = ids("Gid:")
        let args = cmdline.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let startSeconds = bootTime + start / ticks
        var p = ContainerProcess(pid: pid, ppid: ppid, uid: uid, gid: gid, user: String(uid), state: String(f[0]),
                           tty: tty(ttyNr), cpuSeconds: (utime + stime) / ticks,
                           started: Timestamp(seconds: Int64(startSeconds), nanoseconds: Int32((startSeconds - startSeconds.rounded(.down)) * 1e9)),
                           rssKiB: rss * pageSize / 1024, vszKiB: vsz / 1024, threads: threads, command: comm,
                           args: args.last == "" ? Array(args.dropLast()) : args)
        // proc(5)'s fields from the state on (field 3 is f[0]).
        p.pgid = number(2, 0)
        p.sid = number(3, 0)
        p.tpgid = number(5, -1)
        p.flags = number(6, 0)
        p.minorFaults = number(7, 0)
        p.majorFaults = number(9, 0)
        p.priority = number(15, 20)
        p.nice = number(16, 0)
        let startCode: UInt64 = number(23, 0), endCode: UInt64 = number(24, 0)
        p.textKiB = endCode > startCode ? (endCode - startCode) / 1024 : 0
        p.processor = number(36, 0)
        p.rtPriority = number(37, 0)
        p.policy = number(38, 0)
        p.ruid = realID("Uid:")
        p.rgid = realID("Gid:")
        p.realUser = String(p.ruid)
        p.group = String(gid)
        return p
    }

    /// A tty_nr of /proc/PID/stat as ps names it.
    static func tty(_ nr: Int64) -> String {
        guard nr != 0 else { return "?" }
        let major = (nr >> 8) & 0xfff
        let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00)
        switch major {
        case 136...143: return "pts/\(minor + (major - 136) * 256)"
        case 4 where minor < 64: return "tty\(minor)"
        case 4: return "ttyS\(minor - 64)"
        case 5 where minor == 0: return "tty"
        case 5 where minor == 1: return "console"
        default: return "?"
        }
    }
}

extension Engine {
    /// `hako top`: the processes of a running container, in pid order, with
    /// user names from the container's own /etc/passwd.
    public func processes(_ ref: String) throws -> [ContainerProcess] {
        let c = try lookup(ref)
        guard c.isRunning else { throw HakoError(.conflict(.notRunning(c.name)), "container \(c.name) is not running") }
        let pids = try cgroups(for: c.config).processes(c.id).sorted()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 4096))
        let boot = Engine.bootTime()
        let layers = [c.paths.upper] + c.config.layerDirs.reversed()
        let passwd = UserResolver.readFromLayers("/etc/passwd", layers: layers) ?? ""
        let groups = UserResolver.readFromLayers("/etc/group", layers: layers) ?? ""
        func names(_ text: String) -> [UInt32: String] {
            var out: [UInt32: String] = [:]
            for line in text.split(separator: "\n") {
                let f = line.split(separator: ":", omittingEmptySubsequences: false)
                if f.count > 2, let id = UInt32(f[2]), out[id] == nil { out[id] = String(f[0]) }
            }
            return out
        }
        let users = names(passwd), groupNames = names(groups)
        // Files written by a container in its own user namespace hold host ids:
        // the names are those of the ids the container sees.
        let range = c.config.isolation?.userns?.range
        func inside(_ id: UInt32) -> UInt32 {
            guard let r = range else { return id }
            return id >= r.start && id - r.start < r.count ? id - r.start : 65534
        }
        let monitor = c.state?.monitorPid ?? 0
        return pids.compactMap { pid in
            guard let stat = try? FS.readString("/proc/\(pid)/stat"), let status = try? FS.readString("/proc/\(pid)/status") else { return nil }
            let cmdline = (try? FS.readFile("/proc/\(pid)/cmdline")) ?? []
            guard var p = ContainerProcess.parse(stat: stat, status: status, cmdline: cmdline, bootTime: boot, ticks: ticks, pageSize: page) else { return nil }
            // The monitor's probe helper sits in the container's cgroups so that
            // the probes it starts are born there; it is not one of the
            // container's processes (docs/architecture.md, the monitor).
            if p.ppid == monitor && p.command == "hako-probe" { return nil }
            if let n = users[inside(p.uid)] { p.user = n }
            if let n = users[inside(p.ruid)] { p.realUser = n }
            if let n = groupNames[inside(p.gid)] { p.group = n }
            let wchan = ((try? FS.readString("/proc/\(pid)/wchan")) ?? "").trimmed
            p.wchan = wchan == "0" ? "" : wchan
            return p
        }
    }

    /// The boot time (btime of /proc/stat), seconds since the epoch.
    static func bootTime() -> Double {
        let text = (try? FS.readString("/proc/stat")) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmed) ?? 0
        }
        return 0
    }
}
