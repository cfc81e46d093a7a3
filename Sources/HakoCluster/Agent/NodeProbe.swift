#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// The node's capacity and load, read from /proc (a protocol so tests feed figures).
public protocol NodeProbe: Sendable {
    func capacity() -> Resources
    /// Load since the previous call.
    mutating func load(containers: Int) -> NodeLoad
}

/// CPU busy share is smoothed over ~10 s (an exponential moving average), so
/// a one-second spike does not steer placement.
public struct ProcNodeProbe: NodeProbe {
    var previous: (busy: UInt64, total: UInt64, at: Double)?
    var smoothed: Double?
    static let window = 10.0
    let read: @Sendable (String) -> String?

    public init(read: @escaping @Sendable (String) -> String? = { try? FS.readString($0) }) { self.read = read }

    public func capacity() -> Resources {
        let cpus = max(1, Int64(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        return Resources(cpuMillis: cpus * 1000, memory: ProcNodeProbe.meminfo(read("/proc/meminfo") ?? "")["MemTotal"] ?? 0)
    }

    public mutating func load(containers: Int) -> NodeLoad {
        let mem = ProcNodeProbe.meminfo(read("/proc/meminfo") ?? "")
        if let now = ProcNodeProbe.cpuTimes(read("/proc/stat") ?? "") {
            let t = monotonicSeconds()
            if let p = previous, now.total > p.total {
                let sample = min(1, max(0, Double(now.busy &- p.busy) / Double(now.total - p.total)))
                let alpha = 1 - exp(-(t - p.at) / ProcNodeProbe.window)
                smoothed = smoothed.map { $0 + alpha * (sample - $0) } ?? sample
            }
            previous = (now.busy, now.total, t)
        }
        let cpu = smoothed ?? 0
        let load1 = Double((read("/proc/loadavg") ?? "").split(separator: " ").first ?? "") ?? 0
        return NodeLoad(cpu: min(1, max(0, cpu)), load1: load1, memoryTotal: mem["MemTotal"] ?? 0,
                        memoryAvailable: mem["MemAvailable"] ?? 0, containers: containers)
    }

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
