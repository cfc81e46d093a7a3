import HakoSystem

/// A container's usage as its cgroups count it. nil: the host does not count it
/// (controller missing) — shown as "--", never as zero.
public struct CgroupStats: Sendable, Equatable {
    /// CPU time used by every process of the container, ns.
    public var cpuNanos: UInt64?
    /// Memory in use minus inactive page cache (what Docker shows), bytes.
    public var memoryUsage: UInt64?
    /// The memory limit; nil when unlimited.
    public var memoryLimit: UInt64?
    public var pids: UInt64?
    public var pidsLimit: UInt64?
    /// Bytes read from and written to block devices.
    public var blockRead: UInt64?
    public var blockWrite: UInt64?

    public init() {}
}

/// Pure parsers of cgroup statistics files.
public enum CgroupStatFiles {
    /// "key value" lines (cpu.stat, memory.stat) → the value of `key`.
    public static func value(_ text: String?, _ key: String) -> UInt64? {
        guard let text else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, f[0] == key { return UInt64(f[1]) }
        }
        return nil
    }

    /// A single number ("max" and v1's "unlimited" sentinel are nil).
    public static func number(_ text: String?) -> UInt64? {
        guard let t = text?.trimmed, t != "max", let n = UInt64(t) else { return nil }
        return n >= 1 << 62 ? nil : n
    }

    /// v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 …" per device → summed bytes.
    public static func ioStat(_ text: String?) -> (read: UInt64, write: UInt64)? {
        guard let text else { return nil }
        var r: UInt64 = 0, w: UInt64 = 0
        for line in text.split(separator: "\n") {
            for field in line.split(separator: " ").dropFirst() {
                let kv = field.split(separator: "=", maxSplits: 1)
                guard kv.count == 2, let n = UInt64(kv[1]) else { continue }
                if kv[0] == "rbytes" { r &+= n } else if kv[0] == "wbytes" { w &+= n }
            }
        }
        return (r, w)
    }

    /// v1 blkio.*io_service_bytes*: "8:0 Read 123" / "8:0 Write 456" / "Total 579".
    public static func blkioServiced(_ text: String?) -> (read: UInt64, write: UInt64)? {
        guard let text else { return nil }
        var r: UInt64 = 0, w: UInt64 = 0
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 3, let n = UInt64(f[2]) else { continue }
            if f[1] == "Read" { r &+= n } else if f[1] == "Write" { w &+= n }
        }
        return (r, w)
    }

    /// usage minus inactive file cache, never below zero.
    static func workingSet(usage: UInt64?, inactiveFile: UInt64?) -> UInt64? {
        guard let usage else { return nil }
        let cache = inactiveFile ?? 0
        return usage > cache ? usage - cache : 0
    }
}
