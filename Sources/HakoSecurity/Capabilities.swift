import CCap
#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// Capability names and numbers, through libcap (which knows the names) and
/// the running kernel (which knows how many there are).
public enum CapabilityNames {
    /// How many capabilities the kernel has (CAP_LAST_CAP + 1).
    public static let count: Int = {
        let n = Int(cap_max_bits())
        return n > 0 && n <= 64 ? n : 41
    }()

    /// Every capability of this kernel that hako itself holds (its bounding set):
    /// what "ALL" and --privileged give. A process cannot pass on more.
    public static let all: UInt64 = {
        var mask: UInt64 = 0
        for c in 0..<count where cap_get_bound(cap_value_t(c)) == 1 { mask |= UInt64(1) << UInt64(c) }
        return mask
    }()

    /// "NET_ADMIN", "CAP_NET_ADMIN" or "cap_net_admin" → its number; nil if unknown.
    public static func number(_ name: String) -> Int? {
        // By bytes: Unicode case mapping and Character properties cost each
        // name ~12 k instructions, and a container's start reads 14 of them.
        var n: [CChar] = []
        n.reserveCapacity(name.utf8.count + 5)
        for b in name.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "_"): n.append(CChar(bitPattern: b))
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): n.append(CChar(bitPattern: b + 32))
            default: return nil
            }
        }
        guard !n.isEmpty else { return nil }
        if !n.starts(with: "cap_".utf8.map { CChar(bitPattern: $0) }) { n.insert(contentsOf: "cap_".utf8.map { CChar(bitPattern: $0) }, at: 0) }
        n.append(0)
        var value: cap_value_t = 0
        guard cap_from_name(n, &value) == 0, value >= 0, Int(value) < 64 else { return nil }
        return Int(value)
    }

    /// "CAP_NET_ADMIN" for 12.
    public static func name(_ cap: Int) -> String {
        guard let p = cap_to_name(cap_value_t(cap)) else { return "CAP_\(cap)" }
        defer { cap_free(p) }
        return String(cString: p).uppercased()
    }

    public static func names(_ mask: UInt64) -> [String] {
        (0..<64).filter { mask & (UInt64(1) << UInt64($0)) != 0 }.map(name)
    }

    public static func mask(_ names: [String]) -> UInt64 {
        names.compactMap(number).reduce(0) { $0 | (UInt64(1) << UInt64($1)) }
    }
}

/// The five capability sets of a container process.
public struct CapabilitySets: Sendable, Equatable {
    public var bounding: UInt64, effective: UInt64, permitted: UInt64, inheritable: UInt64, ambient: UInt64
}

/// Docker's capability rules: the default set, --cap-add, --cap-drop, --privileged.
public enum CapabilityPolicy {
    /// Docker's default set of 14.
    public static let dockerDefault = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ]

    /// --cap-add / --cap-drop values as "CAP_X" (or "ALL"); an unknown name is refused.
    public static func normalize(_ names: [String], flag: String) throws -> [String] {
        var out: [String] = []
        for raw in names {
            for part in raw.split(separator: ",").map({ String($0).trimmed }) where !part.isEmpty {
                if part.uppercased() == "ALL" {
                    if !out.contains("ALL") { out.insert("ALL", at: 0) }
                    continue
                }
                guard let n = CapabilityNames.number(part) else {
                    throw HakoError(.invalidArgument(flag), "invalid \(flag) \"\(part)\": no such capability (see capabilities(7), e.g. NET_ADMIN)")
                }
                let name = CapabilityNames.name(n)
                if !out.contains(name) { out.append(name) }
            }
        }
        return out
    }

    /// The container's capabilities as a mask (normalized add/drop lists).
    public static func capabilities(add: [String], drop: [String], privileged: Bool) -> UInt64 {
        if privileged { return CapabilityNames.all }
        if add.first == "ALL" { return CapabilityNames.all & ~CapabilityNames.mask(drop) }
        if drop.first == "ALL" { return CapabilityNames.mask(add) }
        return (CapabilityNames.mask(dockerDefault) & ~CapabilityNames.mask(drop)) | CapabilityNames.mask(add)
    }

    /// The sets the process starts with. Root gets `caps` in the bounding,
    /// permitted and effective sets. Any other user gets them in the bounding set
    /// only — but what was added explicitly goes into its ambient set too, so an
    /// unprivileged program keeps it across execve (podman's behaviour).
    public static func sets(_ caps: UInt64, explicitlyAdded: UInt64, rootUser: Bool) -> CapabilitySets {
        if rootUser { return CapabilitySets(bounding: caps, effective: caps, permitted: caps, inheritable: 0, ambient: 0) }
        let kept = caps & explicitlyAdded
        return CapabilitySets(bounding: caps, effective: kept, permitted: kept, inheritable: kept, ambient: kept)
    }
}
