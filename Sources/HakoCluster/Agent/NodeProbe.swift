#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem

/// The node's capacity and load, read from /proc (a protocol so tests feed figures).
public protocol NodeProbe: Sendable {
    func capacity() -> Resources
    /// Load since the previous call.
    mutating func load(containers: Int) -> NodeLoad
}

/// A CPU busy share (0…1) smoothed over ~10 s (an exponential moving
/// average), so a one-second spike does not steer placement.
struct BusyAverage: Sendable {
    static let window = 10.0
    var previous: (busy: UInt64, total: UInt64, at: Double)?
    var smoothed: Double?

    /// Cumulative busy and total time (any unit, the same for both) at `at` seconds.
    mutating func add(busy: UInt64, total: UInt64, at t: Double) {
        if let p = previous, total > p.total {
            // A counter that went back (the cgroup made anew) counts as idle.
            let sample = busy >= p.busy ? min(1, Double(busy - p.busy) / Double(total - p.total)) : 0
            let alpha = 1 - exp(-(t - p.at) / BusyAverage.window)
            smoothed = smoothed.map { $0 + alpha * (sample - $0) } ?? sample
        }
        previous = (busy, total, t)
    }

    var value: Double { min(1, max(0, smoothed ?? 0)) }
}

/// The whole machine's load: /proc/stat, /proc/meminfo, /proc/loadavg
/// (what a node that runs nothing else is best judged by).
public struct ProcNodeProbe: NodeProbe {
    var busy = BusyAverage()
    let read: @Sendable (String) -> String?

    public init(read: @escaping @Sendable (String) -> String? = { try? FS.readString($0) }) { self.read = read }

    public func capacity() -> Resources {
        Resources(cpuMillis: ProcNodeProbe.onlineCPUs * 1000, memory: ProcNodeProbe.meminfo(read("/proc/meminfo") ?? "")["MemTotal"] ?? 0)
    }

    public static var onlineCPUs: Int64 { max(1, Int64(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    public mutating func load(containers: Int) -> NodeLoad {
        let mem = ProcNodeProbe.meminfo(read("/proc/meminfo") ?? "")
        if let now = ProcNodeProbe.cpuTimes(read("/proc/stat") ?? "") { busy.add(busy: now.busy, total: now.total, at: monotonicSeconds()) }
        return NodeLoad(cpu: busy.value, load1: ProcNodeProbe.load1(read("/proc/loadavg")), memoryTotal: mem["MemTotal"] ?? 0,
                        memoryAvailable: mem["MemAvailable"] ?? 0, containers: containers)
    }

    static func load1(_ text: String?) -> Double { Double((text ?? "").split(separator: " ").first ?? "") ?? 0 }

    /// "MemTotal:  16316412 kB" → bytes.
    static func meminfo(_ text: String) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == ":" })
            if f.count >= 2, let v = Int64(f[1]) { out[String(f[0])] = f.count >= 3 && f[2] == "kB" ? v * 1024 : v }
        }
        return out
    }

    /// The first line of /proc/stat: busy (all but idle and iowait) and total jiffies.
    static func cpuTimes(_ text: String) -> (busy: UInt64, total: UInt64)? {
        guard let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        let v = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard v.count >= 5 else { return nil }
        let total = v.prefix(8).reduce(0, +)
        let idle = v[3] + v[4]
        return (total - idle, total)
    }
}

/// The load of one cgroup subtree (agent.toml `load_cgroup`): the CPU time
/// and memory its processes use, against the machine's CPUs and memory. A Pi
/// that also runs other things is judged by what runs under it (the node's
/// cgroup parent: its containers), and nodes that share a machine (the test
/// harness) each see their own load. v1 `cpuacct.usage` and
/// `memory.usage_in_bytes` where those controllers are mounted, else cgroup2
/// `cpu.stat` (usage_usec) and `memory.current`. A subtree that does not exist
/// yet (no container started) is idle.
public struct CgroupNodeProbe: NodeProbe {
    var busy = BusyAverage()
    let cpuFile: String
    let cpuIsV2: Bool
    let memoryFile: String
    let cpus: Int64
    let read: @Sendable (String) -> String?

    public init(path: String, host: CgroupHost = .detect(), cpus: Int64 = ProcNodeProbe.onlineCPUs,
                read: @escaping @Sendable (String) -> String? = { try? FS.readString($0) }) {
        let rel = path.split(separator: "/").joined(separator: "/")
        if let m = host.v1Mount("cpuacct") {
            cpuFile = "\(m)/\(rel)/cpuacct.usage"
            cpuIsV2 = false
        } else {
            cpuFile = "\(host.unified ?? "/sys/fs/cgroup")/\(rel)/cpu.stat"
            cpuIsV2 = true
        }
        memoryFile = host.v1Mount("memory").map { "\($0)/\(rel)/memory.usage_in_bytes" } ?? "\(host.unified ?? "/sys/fs/cgroup")/\(rel)/memory.current"
        self.cpus = max(1, cpus)
        self.read = read
    }

    public func capacity() -> Resources { ProcNodeProbe(read: read).capacity() }

    /// CPU time used by the subtree, in nanoseconds (0 when it does not exist).
    func cpuNanos() -> UInt64 {
        let text = read(cpuFile)
        if cpuIsV2 { return (CgroupStatFiles.value(text, "usage_usec") ?? 0) &* 1000 }
        return CgroupStatFiles.number(text) ?? 0
    }

    public mutating func load(containers: Int) -> NodeLoad {
        let total = ProcNodeProbe.meminfo(read("/proc/meminfo") ?? "")["MemTotal"] ?? 0
        // Busy against all of the machine's CPUs over the same wall time.
        let wallNanos = UInt64(monotonicSeconds() * 1e9)
        busy.add(busy: cpuNanos(), total: wallNanos &* UInt64(cpus), at: monotonicSeconds())
        let used = Int64(clamping: CgroupStatFiles.number(read(memoryFile)) ?? 0)
        return NodeLoad(cpu: busy.value, load1: ProcNodeProbe.load1(read("/proc/loadavg")), memoryTotal: total,
                        memoryAvailable: max(0, total - used), containers: containers)
    }
}
