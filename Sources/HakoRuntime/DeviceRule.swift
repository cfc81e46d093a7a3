import HakoSystem

/// Which device accesses a rule covers: mknod, read, write (cgroup's "mrw").
public struct DeviceAccess: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    // The bit values of the kernel's BPF_DEVCG_ACC_* (the eBPF filter compares them as they are).
    public static let mknod = DeviceAccess(rawValue: 1)
    public static let read = DeviceAccess(rawValue: 2)
    public static let write = DeviceAccess(rawValue: 4)
    public static let all: DeviceAccess = [.mknod, .read, .write]

    /// "rwm" in any order, each letter at most once.
    public init?(parsing s: String) {
        var a: DeviceAccess = []
        for c in s {
            let bit: DeviceAccess
            switch c {
            case "r": bit = .read
            case "w": bit = .write
            case "m": bit = .mknod
            default: return nil
            }
            if a.contains(bit) { return nil }
            a.insert(bit)
        }
        if a.isEmpty { return nil }
        self = a
    }

    /// "rwm" order, as the devices cgroup writes it.
    public var letters: String {
        (contains(.read) ? "r" : "") + (contains(.write) ? "w" : "") + (contains(.mknod) ? "m" : "")
    }
}

/// One device-cgroup rule ("c 1:3 rwm"). Rules are evaluated in order, the last
/// one that matches decides; nothing matches: denied.
public struct DeviceRule: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable { case all = "a", char = "c", block = "b" }
    public var kind: Kind
    /// nil: any ("*").
    public var major: UInt32?
    public var minor: UInt32?
    public var access: DeviceAccess
    public var allow: Bool

    public init(_ kind: Kind, _ major: UInt32?, _ minor: UInt32?, _ access: DeviceAccess = .all, allow: Bool = true) {
        self.kind = kind; self.major = major; self.minor = minor; self.access = access; self.allow = allow
    }

    /// The devices cgroup's syntax: "TYPE MAJOR:MINOR ACCESS" ("c 1:3 rwm", "b *:* m", "a").
    public init(parsing text: String, allow: Bool = true) throws {
        let s = text.trimmed
        let bad = HakoError(.invalidArgument("--device-cgroup-rule"), "invalid device cgroup rule \"\(text)\" (expected TYPE MAJOR:MINOR ACCESS, e.g. \"c 189:* rwm\")")
        if s == "a" { self.init(.all, nil, nil, .all, allow: allow); return }
        let f = s.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard f.count == 3, let kind = Kind(rawValue: f[0]), let access = DeviceAccess(parsing: f[2]) else { throw bad }
        let mm = f[1].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard mm.count == 2 else { throw bad }
        func number(_ x: String) throws -> UInt32? {
            if x == "*" { return nil }
            guard let n = UInt32(x), n < (1 << 20) else { throw bad }
            return n
        }
        self.init(kind, try number(mm[0]), try number(mm[1]), access, allow: allow)
        if kind == .all && (major != nil || minor != nil) { throw bad }
    }

    public var description: String {
        if kind == .all && major == nil && minor == nil && access == .all { return "a" }
        return "\(kind.rawValue) \(major.map(String.init) ?? "*"):\(minor.map(String.init) ?? "*") \(access.letters)"
    }

    /// Whether this rule covers a request (`kind` is the device's: char or block).
    public func matches(kind k: Kind, major ma: UInt32, minor mi: UInt32, access a: DeviceAccess) -> Bool {
        (kind == .all || kind == k) && (major == nil || major == ma) && (minor == nil || minor == mi) && access.isSuperset(of: a)
    }

    public static let allowAll = DeviceRule(.all, nil, nil, .all)
    public static let denyAll = DeviceRule(.all, nil, nil, .all, allow: false)
}

public enum DeviceRules {
    /// Docker's default: everything denied but null, zero, full, random, urandom,
    /// tty, console, ptmx and the pseudo terminals.
    public static let dockerDefault: [DeviceRule] = [
        .denyAll,
        DeviceRule(.char, 1, 3), DeviceRule(.char, 1, 5), DeviceRule(.char, 1, 7),
        DeviceRule(.char, 1, 8), DeviceRule(.char, 1, 9),
        DeviceRule(.char, 5, 0), DeviceRule(.char, 5, 1), DeviceRule(.char, 5, 2),
        DeviceRule(.char, 136, nil),
    ]

    /// The decision for one request: the last matching rule's, else deny. The
    /// reference the generated BPF program is tested against.
    public static func evaluate(_ rules: [DeviceRule], kind: DeviceRule.Kind, major: UInt32, minor: UInt32, access: DeviceAccess) -> Bool {
        for r in rules.reversed() where r.matches(kind: kind, major: major, minor: minor, access: access) { return r.allow }
        return false
    }
}
