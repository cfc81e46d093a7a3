#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// The node's own resources for the agent's metrics, read from /proc and
/// /sys at scrape time (on a worker): CPU time by mode, memory, the data
/// root's file system, bytes written per disk (an SD card wears with them),
/// temperatures, and the Raspberry Pi firmware's throttling flags where the
/// kernel exposes them. Files are read through `read` and `list` so that
/// tests give a fake tree.
public struct NodeResources: Sendable {
    public var read: @Sendable (String) -> String?
    public var list: @Sendable (String) -> [String]
    /// (size, free) bytes of the file system holding a path.
    public var fileSystem: @Sendable (String) -> (size: Double, free: Double)?
    public var dataRoot: String
    public var ticksPerSecond: Double

    public init(read: @escaping @Sendable (String) -> String?, list: @escaping @Sendable (String) -> [String],
                fileSystem: @escaping @Sendable (String) -> (size: Double, free: Double)?, dataRoot: String, ticksPerSecond: Double = 100) {
        self.read = read; self.list = list; self.fileSystem = fileSystem; self.dataRoot = dataRoot; self.ticksPerSecond = ticksPerSecond
    }

    /// This machine's.
    public static func host(dataRoot: String) -> NodeResources {
        NodeResources(read: { try? FS.readString($0) }, list: { (try? FS.list($0)) ?? [] },
                      fileSystem: { path in
                          var s = statvfs()
                          guard statvfs(path, &s) == 0 else { return nil }
                          return (Double(s.f_blocks) * Double(s.f_frsize), Double(s.f_bavail) * Double(s.f_frsize))
                      },
                      dataRoot: dataRoot, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    /// The Raspberry Pi firmware's throttling flags (a hex bit mask; bits 0–3 now, 16–19 since boot).
    static let throttledPath = "/sys/devices/platform/soc/soc:firmware/get_throttled"

    public func families() -> [MetricFamily] {
        var out: [MetricFamily] = []
        // /proc/stat: "cpu  user nice system idle iowait irq softirq steal …" in clock ticks.
        if let line = read("/proc/stat")?.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) {
            let modes = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
            let ticks = line.split(separator: " ").dropFirst().compactMap { Double($0) }
            out.append(.byLabel("hako_node_cpu_seconds_total", .counter, help: "CPU time of the whole node, by mode.", label: "mode",
                                zip(modes, ticks).map { ($0, $1 / ticksPerSecond) }))
        }
        if let text = read("/proc/meminfo") {
            func kB(_ key: String) -> Double? {
                text.split(separator: "\n").first { $0.hasPrefix(key + ":") }
                    .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Double($0) } }.map { $0 * 1024 }
            }
            let kinds = [("total", kB("MemTotal")), ("available", kB("MemAvailable"))].compactMap { k, v in v.map { (k, $0) } }
            out.append(.byLabel("hako_node_memory_bytes", .gauge, help: "The node's memory: total, and available for new work.", label: "kind", kinds))
        }
        if let fs = fileSystem(dataRoot) {
            out.append(.byLabel("hako_node_data_root_bytes", .gauge, help: "The file system of the engine's data root: size and free space.",
                                label: "kind", [("size", fs.size), ("free", fs.free)]))
        }
        // /proc/diskstats: major minor name reads … ; field 10 is sectors written (512 bytes), whole disks only.
        if let text = read("/proc/diskstats") {
            let disks = Set(list("/sys/block"))
            var samples: [(String, Double)] = []
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ")
                guard f.count >= 10, disks.contains(String(f[2])), !f[2].hasPrefix("loop"), !f[2].hasPrefix("ram"),
                      let sectors = Double(f[9]) else { continue }
                samples.append((String(f[2]), sectors * 512))
            }
            out.append(.byLabel("hako_node_disk_written_bytes_total", .counter, help: "Bytes written to each disk of the node (an SD card wears with them).",
                                label: "device", samples))
        }
        var temperatures: [(String, Double)] = []
        for zone in list("/sys/class/thermal").sorted() where zone.hasPrefix("thermal_zone") {
            let dir = "/sys/class/thermal/" + zone
            guard let milli = read(dir + "/temp").flatMap({ Double($0.trimmed) }) else { continue }
            temperatures.append(((read(dir + "/type")?.trimmed).map { $0.isEmpty ? zone : $0 } ?? zone, milli / 1000))
        }
        if !temperatures.isEmpty {
            out.append(.byLabel("hako_node_temperature_celsius", .gauge, help: "Temperature of each thermal zone.", label: "zone", temperatures))
        }
        if let text = read(NodeResources.throttledPath)?.trimmed,
           let mask = UInt32(text.hasPrefix("0x") ? String(text.dropFirst(2)) : text, radix: 16) {
            out.append(.byLabel("hako_node_throttled", .gauge,
                                help: "Raspberry Pi firmware: 1 while under-voltage, frequency capping, throttling or the soft temperature limit is active (now) or has been since boot.",
                                label: "when", [("now", mask & 0xf != 0 ? 1 : 0), ("since_boot", mask & 0xf_0000 != 0 ? 1 : 0)]))
        }
        return out
    }
}
