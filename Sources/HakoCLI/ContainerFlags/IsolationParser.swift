import HakoEngine
import HakoRuntime
import HakoSystem

/// Pure parsers for the limit and hardening flags, in Docker's syntax: the
/// user's text becomes the spec's typed values here, once. Each bad value
/// becomes one error line naming the flag.
public enum IsolationParser {
    static func fail(_ flag: String, _ value: String, _ why: String) -> HakoError {
        HakoError(.invalidArgument(flag), "invalid \(flag) \"\(value)\": \(why)")
    }

    /// "512m", "1.5g", "1048576" → bytes (`ByteSize`), the error naming the flag.
    public static func bytes(_ s: String, flag: String) throws -> Int64 {
        guard let n = ByteSize.parse(s) else { throw fail(flag, s, "expected a size such as 512m or 1g (below 8 EiB)") }
        return Int64(n)
    }

    /// --cpus: a decimal number of CPUs, at most those online → nano CPUs.
    public static func cpus(_ s: String, online: Int) throws -> Int64 {
        guard let v = Double(s), v.isFinite, v > 0 else { throw fail("--cpus", s, "expected a positive number of CPUs, e.g. 0.5") }
        let nano = Int64((v * 1e9).rounded())
        guard nano >= 10_000_000 else { throw fail("--cpus", s, "the minimum is 0.01") }
        guard v <= Double(online) else {
            throw fail("--cpus", s, "range of CPUs is from 0.01 to \(online).00, as there are only \(online) CPUs available")
        }
        return nano
    }

    /// --cpuset-cpus / --cpuset-mems: the list's form (which ids exist is the engine's check).
    public static func cpuset(_ s: String, flag: String) throws -> String {
        guard ResourceLimits.idList(s) != nil else { throw fail(flag, s, "expected a list such as 0-2,4") }
        return s
    }

    /// "PATH:RATE" of --device-read-bps and friends.
    public static func rate(_ s: String, flag: String, bytes isBytes: Bool) throws -> (path: String, rate: UInt64) {
        guard let colon = s.lastIndex(of: ":") else { throw fail(flag, s, "expected DEVICE:RATE, e.g. /dev/sda:1mb") }
        let path = String(s[..<colon]), value = String(s[s.index(after: colon)...])
        guard path.hasPrefix("/") else { throw fail(flag, s, "the device must be an absolute path") }
        let rate: Int64
        if isBytes {
            rate = try bytes(value, flag: flag)
        } else {
            guard let n = Int64(value), n >= 0 else { throw fail(flag, s, "the rate must be a number of operations per second") }
            rate = n
        }
        guard rate > 0 else { throw fail(flag, s, "the rate must be above zero") }
        return (path, UInt64(rate))
    }

    /// A rate limit on a block device, its parts checked and the node's numbers read; `text` for the error.
    public static func deviceRate(path: String, rate: UInt64, flag: String, text: String) throws -> DeviceRate {
        guard path.hasPrefix("/") else { throw fail(flag, text, "the device must be an absolute path") }
        guard rate > 0 else { throw fail(flag, text, "the rate must be above zero") }
        return try Engine.deviceRate(path: path, rate: rate, flag: flag, text: text)
    }

    /// --device HOST[:CONTAINER][:PERMISSIONS], as Docker splits it.
    public static func device(_ s: String) throws -> IsolationConfig.DeviceMapping {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let host = parts[0]
        var container = parts[0], perms = "rwm"
        switch parts.count {
        case 1: break
        case 2:
            if DeviceAccess(parsing: parts[1]) != nil { perms = parts[1] } else { container = parts[1] }
        case 3:
            container = parts[1]
            perms = parts[2]
        default:
            throw fail("--device", s, "expected HOST[:CONTAINER][:PERMISSIONS]")
        }
        return try device(host: host, container: container, permissions: perms, text: s)
    }

    /// A device mapping's parts checked (the Docker API's Devices come apart); `text` for the error.
    public static func device(host: String, container: String, permissions perms: String, text s: String) throws -> IsolationConfig.DeviceMapping {
        let container = container.isEmpty ? host : container
        guard DeviceAccess(parsing: perms) != nil else { throw fail("--device", s, "permissions are a combination of r, w and m") }
        let host = FS.normalize(host)
        guard host.hasPrefix("/"), container.hasPrefix("/") else { throw fail("--device", s, "device paths must be absolute") }
        guard container != "/", container != "/dev", !container.split(separator: "/").contains("..") else {
            throw fail("--device", s, "invalid path in the container")
        }
        return .init(host: host, container: FS.normalize(container), permissions: perms)
    }

    /// --sysctl KEY=VALUE ("/" in the key as "."); whether the key belongs to
    /// a namespace of the container's own is the engine's check.
    public static func sysctl(_ s: String) throws -> IsolationConfig.Sysctl {
        let kv = s.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard kv.count == 2, !kv[0].isEmpty else { throw fail("--sysctl", s, "expected KEY=VALUE") }
        return .init(key: kv[0].replacing("/", with: "."), value: kv[1])
    }

    /// --ulimit NAME=SOFT[:HARD] (-1: unlimited).
    public static func ulimit(_ s: String) throws -> IsolationConfig.Ulimit {
        let names = IsolationConfig.Ulimit.resources
        let kv = s.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2, names[kv[0]] != nil else {
            throw fail("--ulimit", s, "expected NAME=SOFT[:HARD] with NAME one of \(names.keys.sorted().joined(separator: ", "))")
        }
        let v = kv[1].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(v.count), let soft = Int64(v[0]), let hard = v.count == 2 ? Int64(v[1]) : soft,
              soft >= -1, hard >= -1 else { throw fail("--ulimit", s, "limits are numbers (-1: unlimited)") }
        if hard != -1 && (soft == -1 || soft > hard) { throw fail("--ulimit", s, "the soft limit is above the hard limit") }
        return .init(name: kv[0], soft: soft, hard: hard)
    }

    public struct SecurityOptions: Equatable, Sendable {
        public enum Seccomp: Equatable, Sendable { case `default`, unconfined, file(String) }
        public var seccomp: Seccomp = .default
        public var noNewPrivileges = false
        public var unmaskedPaths = false
        public init() {}
    }

    /// --security-opt: seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false],
    /// systempaths=unconfined; apparmor=unconfined and label=disable are accepted (hako applies neither).
    public static func securityOptions(_ list: [String]) throws -> SecurityOptions {
        var out = SecurityOptions()
        for raw in list {
            // Docker's old "key:value" form is still accepted.
            let sep = raw.firstIndex(of: "=") ?? raw.firstIndex(of: ":")
            let key = String(raw[..<(sep ?? raw.endIndex)])
            let value = sep.map { String(raw[raw.index(after: $0)...]) }
            switch (key, value) {
            case ("seccomp", "unconfined"?): out.seccomp = .unconfined
            case ("seccomp", let path?) where !path.isEmpty: out.seccomp = .file(path)
            case ("no-new-privileges", nil), ("no-new-privileges", "true"?): out.noNewPrivileges = true
            case ("no-new-privileges", "false"?): out.noNewPrivileges = false
            case ("systempaths", "unconfined"?): out.unmaskedPaths = true
            case ("apparmor", "unconfined"?), ("label", "disable"?): continue
            case ("apparmor", _), ("label", _):
                throw fail("--security-opt", raw, "hako applies no AppArmor or SELinux profile (only \(key)=\(key == "label" ? "disable" : "unconfined") is accepted)")
            default:
                throw fail("--security-opt", raw, "supported: seccomp=unconfined|PROFILE.json, no-new-privileges, systempaths=unconfined")
            }
        }
        return out
    }

    /// --security-opt into the spec's hardening: a seccomp profile is read here.
    public static func apply(securityOpt list: [String], to i: inout ContainerSpec.Isolation) throws {
        let sec = try securityOptions(list)
        i.noNewPrivileges = sec.noNewPrivileges
        i.unmaskedPaths = sec.unmaskedPaths
        i.securityOpt = list
        switch sec.seccomp {
        case .default: i.seccomp = .default
        case .unconfined: i.seccomp = .unconfined
        case .file(let path): i.seccomp = .profile(try Engine.readSeccompProfile(path), path: path)
        }
    }
}
