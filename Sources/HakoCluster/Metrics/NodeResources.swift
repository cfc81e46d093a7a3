#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// What a node has and uses, for its metrics: CPU time, memory, the data
/// root's file system, disk I/O per device (the SD card's write rate),
/// temperatures, and the Raspberry Pi firmware's throttling flags. Read from
/// procfs and sysfs under given roots, so tests can hand it a tree of their own;
/// anything a host lacks (no thermal zones on a VM, no Pi firmware) is absent.
public struct NodeResources: Sendable, Equatable {
    /// Seconds the CPUs spent in each mode since boot, /proc/stat's first line.
    public var cpuSeconds: [String: Double] = [:]
    public var memoryTotalBytes: UInt64?
    public var memoryAvailableBytes: UInt64?
    public struct FileSystem: Sendable, Equatable {
        public var path: String
        public var sizeBytes: UInt64
        public var availableBytes: UInt64
    }
    public var dataRoot: FileSystem?
    public struct Disk: Sendable, Equatable {
        public var readBytes: UInt64
        public var writtenBytes: UInt64
    }
    /// Whole block devices (not partitions, loops or RAM disks), by name.
    public var disks: [String: Disk] = [:]
    /// Degrees Celsius by thermal zone type (e.g. "cpu-thermal"); a type seen
    /// twice is suffixed with its zone number.
    public var temperatures: [String: Double] = [:]
    /// The Pi firmware's get_throttled bit mask, where the firmware offers it.
    public var throttled: UInt32?

    public init() {}

    static let cpuModes = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]

    /// Pure: /proc/stat's aggregate "cpu" line in clock ticks → seconds per mode.
    static func parseCPU(_ stat: String, ticksPerSecond: Double) -> [String: Double] {
        guard let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return [:] }
        let values = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        var out: [String: Double] = [:]
        for (mode, v) in zip(cpuModes, values) { out[mode] = v / ticksPerSecond }
        return out
    }

    /// Pure: MemTotal and MemAvailable of /proc/meminfo, in bytes.
    static func parseMemory(_ meminfo: String) -> (total: UInt64?, available: UInt64?) {
        var total: UInt64?, available: UInt64?
        for line in meminfo.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 2, let kib = UInt64(f[1]) else { continue }
            if f[0] == "MemTotal:" { total = kib * 1024 }
            if f[0] == "MemAvailable:" { available = kib * 1024 }
        }
        return (total, available)
    }

    /// Pure: /proc/diskstats (sectors of 512 bytes) for the devices named.
    static func parseDiskstats(_ text: String, devices: Set<String>) -> [String: Disk] {
        var out: [String: Disk] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 10, devices.contains(String(f[2])), let rd = UInt64(f[5]), let wr = UInt64(f[9]) else { continue }
            out[String(f[2])] = Disk(readBytes: rd * 512, writtenBytes: wr * 512)
        }
        return out
    }

    /// Reads the node's figures; `proc` and `sys` are where procfs and sysfs are.
    public static func read(dataRoot: String, proc: String = "/proc", sys: String = "/sys") -> NodeResources {
        var r = NodeResources()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        if let stat = try? FS.readString(proc + "/stat") { r.cpuSeconds = parseCPU(stat, ticksPerSecond: ticks > 0 ? ticks : 100) }
        if let mem = try? FS.readString(proc + "/meminfo") { (r.memoryTotalBytes, r.memoryAvailableBytes) = parseMemory(mem) }
        var v = statvfs()
        if statvfs(dataRoot, &v) == 0 {
            let unit = UInt64(v.f_frsize > 0 ? v.f_frsize : v.f_bsize)
            r.dataRoot = FileSystem(path: dataRoot, sizeBytes: UInt64(v.f_blocks) * unit, availableBytes: UInt64(v.f_bavail) * unit)
        }
        let skip = ["loop", "ram", "zram", "nbd", "dm-", "md"]
        let devices = Set(((try? FS.list(sys + "/block")) ?? []).filter { d in !skip.contains { d.hasPrefix($0) } })
        if !devices.isEmpty, let stats = try? FS.readString(proc + "/diskstats") { r.disks = parseDiskstats(stats, devices: devices) }
        let thermal = sys + "/class/thermal"
        for zone in ((try? FS.list(thermal)) ?? []).filter({ $0.hasPrefix("thermal_zone") }).sorted() {
            guard let raw = try? FS.readString("\(thermal)/\(zone)/temp"), let milli = Double(raw.trimmed) else { continue }
            var type = (try? FS.readString("\(thermal)/\(zone)/type"))?.trimmed ?? zone
            if type.isEmpty || r.temperatures[type] != nil { type += "-" + zone.dropFirst("thermal_zone".count) }
            r.temperatures[type] = milli / 1000
        }
        // The Pi's firmware driver (raspberrypi-hwmon's source): a hex mask.
        if let raw = try? FS.readString(sys + "/devices/platform/soc/soc:firmware/get_throttled") {
            let t = raw.trimmed
            r.throttled = UInt32(t.hasPrefix("0x") ? String(t.dropFirst(2)) : t, radix: 16)
        }
        return r
    }

    /// The firmware's bits: now (0–3) and since boot (16–19).
    static let throttleReasons: [(String, UInt32)] = [("under_voltage", 0), ("frequency_capped", 1), ("throttled", 2), ("soft_temperature_limit", 3)]

    public func families() -> [MetricFamily] {
        var out: [MetricFamily] = []
        if !cpuSeconds.isEmpty {
            out.append(.byLabel("hako_node_cpu_seconds_total", .counter, help: "Seconds the node's CPUs spent in each mode since boot.", label: "mode",
                                Self.cpuModes.compactMap { m in cpuSeconds[m].map { (m, $0) } }))
        }
        if let t = memoryTotalBytes {
            out.append(MetricFamily("hako_node_memory_total_bytes", .gauge, help: "The node's memory.", samples: [.init(value: Double(t))]))
        }
        if let a = memoryAvailableBytes {
            out.append(MetricFamily("hako_node_memory_available_bytes", .gauge, help: "Memory available to new work without swapping (MemAvailable).",
                                    samples: [.init(value: Double(a))]))
        }
        if let fs = dataRoot {
            out.append(MetricFamily("hako_node_filesystem_size_bytes", .gauge, help: "Size of the file system holding hako's data root.",
                                    samples: [.init(labels: [("path", fs.path)], value: Double(fs.sizeBytes))]))
            out.append(MetricFamily("hako_node_filesystem_available_bytes", .gauge, help: "Space left to unprivileged writers on the data root's file system.",
                                    samples: [.init(labels: [("path", fs.path)], value: Double(fs.availableBytes))]))
        }
        if !disks.isEmpty {
            let names = disks.keys.sorted()
            out.append(MetricFamily("hako_node_disk_read_bytes_total", .counter, help: "Bytes read from each block device since boot.",
                                    samples: names.map { .init(labels: [("device", $0)], value: Double(disks[$0]?.readBytes ?? 0)) }))
            out.append(MetricFamily("hako_node_disk_written_bytes_total", .counter, help: "Bytes written to each block device since boot (an SD card's wear).",
                                    samples: names.map { .init(labels: [("device", $0)], value: Double(disks[$0]?.writtenBytes ?? 0)) }))
        }
        if !temperatures.isEmpty {
            out.append(.byLabel("hako_node_temperature_celsius", .gauge, help: "Temperature of each thermal zone.", label: "zone",
                                temperatures.keys.sorted().map { ($0, temperatures[$0] ?? 0) }))
        }
        if let t = throttled {
            out.append(.byLabel("hako_node_throttled", .gauge, help: "1 while the Raspberry Pi firmware reports the condition.", label: "reason",
                                Self.throttleReasons.map { ($0.0, Double((t >> $0.1) & 1)) }))
            out.append(.byLabel("hako_node_throttled_since_boot", .gauge, help: "1 when the Raspberry Pi firmware has seen the condition since boot.",
                                label: "reason", Self.throttleReasons.map { ($0.0, Double((t >> ($0.1 + 16)) & 1)) }))
        }
        return out
    }
}

/// `hako_build_info`: the version and role of the daemon that answers.
public enum BuildInfo {
    public static var version: String { Agent.version }

    public static func family(role: String) -> MetricFamily {
        MetricFamily("hako_build_info", .gauge, help: "Always 1; the labels say which hako answers.",
                     samples: [.init(labels: [("version", version), ("role", role)], value: 1)])
    }
}
