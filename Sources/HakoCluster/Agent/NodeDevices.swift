#if canImport(Glibc)
import Glibc
#endif

/// The host devices a node reports to the coordinator and gives to tasks.
///
/// Reported: the paths the coordinator asks about (every path a service
/// names) and those of agent.toml `devices` (paths or glob patterns, reported
/// whether a service names them or not: `node inspect` shows them), each if
/// it is a character or block device now (a symlink to one counts, under the
/// name asked for) and `deny_devices` does not refuse it. A refused device is
/// never reported, so no task that needs it is placed here, and a task
/// assigned anyway (by a coordinator that did not know) is rejected at its start.
public struct NodeDevices: Sendable, Equatable {
    /// agent.toml `devices`.
    public var offered: [String]
    /// agent.toml `deny_devices`: paths or patterns; a device is refused when
    /// its path, or the path its symlinks lead to, matches one, or when it is
    /// the same device (type and numbers) as one that a pattern names.
    public var denied: [String]

    public init(offered: [String], denied: [String] = []) {
        self.offered = offered
        self.denied = denied
    }

    /// What the node reports, sorted: the requested paths that are devices
    /// here first, then the offered ones; at most `DeviceRequest.maxPaths`.
    /// A requested path that is not acceptable (relative, `..`, NUL, too
    /// long: `DeviceRequest.isAcceptable`) is not looked at.
    public func report(requested: [String]) -> [String] {
        let refusal = Refusal(denied)
        var out: Set<String> = []
        var looked = 0
        for p in requested where DeviceRequest.isAcceptable(p) && !out.contains(p) {
            looked += 1
            if looked > DeviceRequest.maxPaths { break }
            if let st = NodeDevices.device(at: p), !refusal.refuses(p, st) { out.insert(p) }
        }
        for p in NodeDevices.expand(offered) where out.count < DeviceRequest.maxPaths && !out.contains(p) {
            if let st = NodeDevices.device(at: p), !refusal.refuses(p, st) { out.insert(p) }
        }
        return out.sorted()
    }

    /// Why a task needing these host devices cannot run here (one of them is
    /// refused), or nil. A device that does not exist is the engine's to report.
    public func refusal(_ paths: [String]) -> String? {
        guard !denied.isEmpty else { return nil }
        let refusal = Refusal(denied)
        for p in paths {
            if let st = NodeDevices.device(at: p), refusal.refuses(p, st) {
                return "device \(p) is refused by this node (agent.toml deny_devices)"
            }
        }
        return nil
    }

    /// The path's status, following symlinks, if it is a character or block device.
    static func device(at path: String) -> stat? {
        var st = stat()
        guard DeviceRequest.isAcceptable(path), stat(path, &st) == 0 else { return nil }
        let fmt = st.st_mode & S_IFMT
        return fmt == S_IFCHR || fmt == S_IFBLK ? st : nil
    }

    /// The paths the patterns match now (glob(3)), at most `DeviceRequest.maxPaths`.
    static func expand(_ patterns: [String]) -> [String] {
        var out: [String] = []
        for p in patterns where DeviceRequest.isAcceptable(p) {
            var g = glob_t()
            defer { globfree(&g) }
            guard glob(p, 0, nil, &g) == 0 else { continue }
            for i in 0..<Int(g.gl_pathc) {
                guard out.count < DeviceRequest.maxPaths else { return out }
                if let c = g.gl_pathv[i] { out.append(String(cString: c)) }
            }
        }
        return out
    }

    /// `deny_devices` as it stands now: the patterns, and the devices (type
    /// and numbers) they name, so that another name of the same device (a
    /// symlink, a hard link, a node made elsewhere) is refused too.
    struct Refusal {
        let patterns: [String]
        let numbers: Set<[UInt64]>

        init(_ patterns: [String]) {
            self.patterns = patterns.filter(DeviceRequest.isAcceptable)
            var numbers: Set<[UInt64]> = []
            for p in NodeDevices.expand(self.patterns) {
                if let st = NodeDevices.device(at: p) { numbers.insert(Refusal.key(st)) }
            }
            self.numbers = numbers
        }

        static func key(_ st: stat) -> [UInt64] { [UInt64(st.st_mode & S_IFMT), UInt64(st.st_rdev)] }

        func refuses(_ path: String, _ st: stat) -> Bool {
            guard !patterns.isEmpty else { return false }
            if numbers.contains(Refusal.key(st)) || matches(path) { return true }
            guard let real = realpath(path, nil) else { return false }
            defer { free(real) }
            return matches(String(cString: real))
        }

        func matches(_ path: String) -> Bool {
            patterns.contains { fnmatch($0, path, FNM_PATHNAME) == 0 }
        }
    }
}
