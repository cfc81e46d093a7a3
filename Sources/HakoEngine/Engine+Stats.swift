#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem

/// One container's usage over an interval, as `docker stats` shows it.
public struct ContainerStats: Sendable, Equatable {
    public var id: String
    public var name: String
    /// 100 = one CPU busy for the whole interval; nil when the host does not count.
    public var cpuPercent: Double?
    public var memoryUsage: UInt64?
    /// The container's limit, or the host's memory when it has none.
    public var memoryLimit: UInt64
    public var memoryPercent: Double?
    public var netRx: UInt64?
    public var netTx: UInt64?
    public var blockRead: UInt64?
    public var blockWrite: UInt64?
    public var pids: UInt64?
}

/// Counters read at one moment; two make a `ContainerStats`.
public struct StatsSample: Sendable {
    public var container: Container
    public var time: Double
    public var cgroup: CgroupStats
    public var net: (rx: UInt64, tx: UInt64)?
}

extension Engine {
    /// Reads the counters of running containers (the named ones, else all).
    public func statsSample(_ refs: [String]) throws -> [StatsSample] {
        let containers = refs.isEmpty ? try list().filter(\.isRunning) : try refs.map(lookup)
        return containers.map { c in
            let stats = (try? cgroups(for: c.config).stats(c.id)) ?? CgroupStats()
            let pid = c.isRunning ? c.state?.pid ?? 0 : 0
            let net = pid > 0 ? Engine.networkBytes((try? FS.readString("/proc/\(pid)/net/dev")) ?? "") : nil
            return StatsSample(container: c, time: monotonicSeconds(), cgroup: stats, net: net)
        }
    }

    /// `before` and `after` of the same containers → their usage over the interval.
    public static func stats(before: [StatsSample], after: [StatsSample]) -> [ContainerStats] {
        let hostMemory = Engine.hostMemory()
        return after.map { a in
            let b = before.first { $0.container.id == a.container.id }
            var cpu: Double?
            if let b, let n0 = b.cgroup.cpuNanos, let n1 = a.cgroup.cpuNanos, a.time > b.time {
                cpu = Double(n1 >= n0 ? n1 - n0 : 0) / ((a.time - b.time) * 1e9) * 100
            }
            let limit = a.cgroup.memoryLimit.map { min($0, hostMemory) } ?? hostMemory
            let running = a.container.isRunning
            return ContainerStats(
                id: a.container.id, name: a.container.name, cpuPercent: running ? cpu : 0,
                memoryUsage: running ? a.cgroup.memoryUsage : 0, memoryLimit: limit,
                memoryPercent: a.cgroup.memoryUsage.map { limit > 0 && running ? Double($0) / Double(limit) * 100 : 0 },
                netRx: a.net?.rx, netTx: a.net?.tx, blockRead: a.cgroup.blockRead, blockWrite: a.cgroup.blockWrite,
                pids: running ? a.cgroup.pids : 0)
        }
    }

    /// /proc/<pid>/net/dev of the container's network namespace → bytes received
    /// and sent on every interface but loopback.
    static func networkBytes(_ text: String) -> (rx: UInt64, tx: UInt64)? {
        var rx: UInt64 = 0, tx: UInt64 = 0
        var any = false
        for line in text.split(separator: "\n").dropFirst(2) {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].trimmed != "lo" else { continue }
            let f = parts[1].split(separator: " ")
            guard f.count >= 9, let r = UInt64(f[0]), let t = UInt64(f[8]) else { continue }
            rx &+= r; tx &+= t; any = true
        }
        return any ? (rx, tx) : (text.contains("lo:") ? (0, 0) : nil)
    }

    static func hostMemory() -> UInt64 {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && size > 0 ? UInt64(pages) * UInt64(size) : 0
    }
}
