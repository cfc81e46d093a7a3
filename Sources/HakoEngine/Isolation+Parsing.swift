#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSystem

/// Pure parsers for the limit and hardening flags, in Docker's syntax. Each
/// bad value becomes one error line naming the flag.
enum IsolationParser {
    static func fail(_ flag: String, _ value: String, _ why: String) -> HakoError {
        HakoError(.failed, "invalid \(flag) \"\(value)\": \(why)")
    }

    /// "512m", "1.5g", "1048576" → bytes (`ByteSize`), the error naming the flag.
    static func bytes(_ s: String, flag: String) throws -> Int64 {
        guard let n = ByteSize.parse(s) else { throw fail(flag, s, "expected a size such as 512m or 1g (below 8 EiB)") }
        return Int64(n)
    }

    /// --cpus: a decimal number of CPUs, at most those online → nano CPUs.
    static func cpus(_ s: String, online: Int) throws -> Int64 {
        guard let v = Double(s), v.isFinite, v > 0 else { throw fail("--cpus", s, "expected a positive number of CPUs, e.g. 0.5") }
        let nano = Int64((v * 1e9).rounded())
        guard nano >= 10_000_000 else { throw fail("--cpus", s, "the minimum is 0.01") }
        guard v <= Double(online) else {
            throw fail("--cpus", s, "range of CPUs is from 0.01 to \(online).00, as there are only \(online) CPUs available")
        }
        return nano
    }

    /// "0-2,4" → the ids it names; nil when malformed.
    static func idList(_ s: String) -> [Int]? {
        var out: [Int] = []
        for part in s.split(separator: ",", omittingEmptySubsequences: false) {
            let r = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(r.count), let a = Int(r[0]), a >= 0, let b = r.count == 2 ? Int(r[1]) : a, b >= a, b - a < 4096 else { return nil }
            out += Array(a...b)
        }
        return out.isEmpty ? nil : out
    }

    /// --cpuset-cpus / --cpuset-mems: the list must parse and name only available ids.
    static func cpuset(_ s: String, flag: String, available: String?) throws -> String {
        guard let wanted = idList(s) else { throw fail(flag, s, "expected a list such as 0-2,4") }
        if let available, let have = idList(available.trimmed) {
            let missing = Set(wanted).subtracting(have)
            if !missing.isEmpty {
                let what = flag == "--cpuset-cpus" ? "CPUs" : "memory nodes"
                throw HakoError(.failed, "invalid \(flag) \"\(s)\": requested \(what) are not available - requested \(s), available: \(available.trimmed)")
            }
        }
        return s
    }

    /// "PATH:RATE" of --device-read-bps and friends.
    static func rate(_ s: String, flag: String, bytes isBytes: Bool) throws -> (path: String, rate: UInt64) {
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

    /// --device HOST[:CONTAINER][:PERMISSIONS], as Docker splits it.
    static func device(_ s: String) throws -> IsolationConfig.DeviceMapping {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var host = parts[0], container = parts[0], perms = "rwm"
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
        if container.isEmpty { container = host }
        guard DeviceAccess(parsing: perms) != nil else { throw fail("--device", s, "permissions are a combination of r, w and m") }
        host = FS.normalize(host)
        guard host.hasPrefix("/"), container.hasPrefix("/") else { throw fail("--device", s, "device paths must be absolute") }
        guard container != "/", container != "/dev", !container.split(separator: "/").contains("..") else {
            throw fail("--device", s, "invalid path in the container")
        }
        return .init(host: host, container: FS.normalize(container), permissions: perms)
    }

    static func containerPath(_ p: String, flag: String, value: String) throws {
        guard p.hasPrefix("/"), p != "/", !p.split(separator: "/").contains(".."), !p.contains("\0") else {
            throw fail(flag, value, "the path must be absolute, not \"/\", without \"..\"")
        }
    }

    /// Sysctls that belong to a namespace of the container's own: IPC, UTS, network.
    static func sysctl(_ s: String, ipcPrivate: Bool, utsPrivate: Bool, networkPrivate: Bool) throws -> IsolationConfig.Sysctl {
        let kv = s.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard kv.count == 2, !kv[0].isEmpty else { throw fail("--sysctl", s, "expected KEY=VALUE") }
        let key = kv[0].replacing("/", with: ".")
        guard key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }), !key.contains(".."),
              !kv[1].contains("\n"), !kv[1].contains("\0") else { throw fail("--sysctl", s, "bad key or value") }
        let ipc: Set<String> = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"]
        if ipc.contains(key) || key.hasPrefix("fs.mqueue.") {
            guard ipcPrivate else { throw fail("--sysctl", s, "it belongs to the IPC namespace, which is shared with the host (--ipc host)") }
        } else if key == "kernel.domainname" || key == "kernel.hostname" {
            guard utsPrivate else { throw fail("--sysctl", s, "it belongs to the UTS namespace, which is shared with the host (--uts host)") }
        } else if key.hasPrefix("net.") {
            guard networkPrivate else { throw fail("--sysctl", s, "it belongs to the network namespace, which is shared with the host (--network host)") }
        } else {
            throw fail("--sysctl", s, "not a namespaced sysctl: it would change the whole host (allowed: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, kernel.domainname, net.*)")
        }
        return .init(key: key, value: kv[1])
    }

    static let rlimits: [String: UInt32] = [
        "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7,
        "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
    ]

    /// --ulimit NAME=SOFT[:HARD] (-1: unlimited).
    static func ulimit(_ s: String) throws -> IsolationConfig.Ulimit {
        let kv = s.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2, rlimits[kv[0]] != nil else {
            throw fail("--ulimit", s, "expected NAME=SOFT[:HARD] with NAME one of \(rlimits.keys.sorted().joined(separator: ", "))")
        }
        let v = kv[1].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(v.count), let soft = Int64(v[0]), let hard = v.count == 2 ? Int64(v[1]) : soft,
              soft >= -1, hard >= -1 else { throw fail("--ulimit", s, "limits are numbers (-1: unlimited)") }
        if hard != -1 && (soft == -1 || soft > hard) { throw fail("--ulimit", s, "the soft limit is above the hard limit") }
        return .init(name: kv[0], soft: soft, hard: hard)
    }

    struct SecurityOptions: Equatable {
        enum Seccomp: Equatable { case `default`, unconfined, file(String) }
        var seccomp: Seccomp = .default
        var noNewPrivileges = false
        var unmaskedPaths = false
    }

    /// --security-opt: seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false],
    /// systempaths=unconfined; apparmor=unconfined and label=disable are accepted (hako applies neither).
    static func securityOptions(_ list: [String]) throws -> SecurityOptions {
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

    /// --userns: host (none), auto, auto:size=N.
    static func userns(_ s: String) throws -> IsolationConfig.Userns? {
        switch s {
        case "", "host": return nil
        case "auto": return .init(size: IDRangeAllocator.defaultSize)
        default:
            guard s.hasPrefix("auto:size="), let n = UInt32(s.dropFirst("auto:size=".count)), n >= 1 else {
                throw fail("--userns", s, "expected host, auto or auto:size=N")
            }
            return .init(size: n)
        }
    }
}
