#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem

/// The engine's version: `hako version`, `hako info`, the Docker API's /version.
public enum EngineVersion {
    public static let version = "0.1.0"
    /// The Docker Engine API version hako's command line and API follow.
    public static let apiVersion = "1.43"
}

/// `hako info`: facts about this host and what hako holds, Docker's keys
/// where Docker has one (so `--format '{{.CgroupVersion}}'` reads the same).
public struct EngineInfo: Codable, Sendable, Equatable {
    public var Name: String
    public var ServerVersion: String
    public var Containers: Int
    public var ContainersRunning: Int
    public var ContainersPaused: Int
    public var ContainersStopped: Int
    public var Images: Int
    public var Volumes: Int
    public var Networks: Int
    public var Driver: String
    /// The overlay's backing file system ("Backing Filesystem" in docker info).
    public var BackingFilesystem: String
    public var DockerRootDir: String
    public var RunRoot: String
    /// "1" (legacy and hybrid hosts) or "2"; hybrid hosts say so in CgroupMode.
    public var CgroupVersion: String
    public var CgroupDriver: String
    public var CgroupMode: String
    public var CgroupParent: String
    public var KernelVersion: String
    public var OperatingSystem: String
    public var OSType: String
    public var Architecture: String
    public var NCPU: Int
    public var MemTotal: UInt64
    /// The OCI runtime shipped with hako and the one containers run under.
    public var Runtimes: [String]
    public var DefaultRuntime: String
    public var SecurityOptions: [String]
    public var LoggingDriver: String
    public var SystemTime: String
}

extension Engine {
    public func info() throws -> EngineInfo {
        let containers = try list()
        var u = utsname()
        uname(&u)
        func field<T>(_ v: T) -> String { withUnsafeBytes(of: v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        let backing = Engine.fileSystemType(of: paths.root, mountinfo: (try? FS.readString("/proc/self/mountinfo")) ?? "")
        let osRelease = (try? FS.readString("/etc/os-release")) ?? ""
        let pretty = osRelease.split(separator: "\n").first { $0.hasPrefix("PRETTY_NAME=") }
            .map { String($0.dropFirst(12)).trimmingQuotes } ?? "Linux"
        var security = ["name=seccomp,profile=builtin"]
        if FS.exists("/sys/kernel/security/apparmor") { security.insert("name=apparmor", at: 0) }
        security.append("name=userns")
        if cgroupHost.mode == .unified { security.append("name=cgroupns") }
        return EngineInfo(
            Name: field(u.nodename), ServerVersion: EngineVersion.version,
            Containers: containers.count,
            ContainersRunning: containers.filter { $0.status == .running || $0.status == .restarting }.count,
            ContainersPaused: containers.filter { $0.status == .paused }.count,
            ContainersStopped: containers.filter { !$0.isRunning && $0.status != .restarting }.count,
            Images: try images.list().filter { !$0.isHost }.count,
            Volumes: (try? volumes().count) ?? 0, Networks: (try? networks().count) ?? 0,
            Driver: "overlay", BackingFilesystem: backing, DockerRootDir: paths.root, RunRoot: paths.runRoot,
            CgroupVersion: cgroupHost.mode == .unified ? "2" : "1", CgroupDriver: "cgroupfs",
            CgroupMode: cgroupHost.mode.rawValue, CgroupParent: cgroupParent,
            KernelVersion: field(u.release), OperatingSystem: pretty, OSType: field(u.sysname).lowercased(),
            Architecture: field(u.machine), NCPU: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), MemTotal: Engine.hostMemory(),
            Runtimes: ["hako", "hako-runtime"], DefaultRuntime: "hako", SecurityOptions: security,
            LoggingDriver: "hako-file", SystemTime: Timestamp.now().rfc3339)
    }

    /// The file system type (ext4, btrfs, tmpfs …) of the mount a path lies on,
    /// from mountinfo: the longest mount point containing it, the last listed.
    static func fileSystemType(of path: String, mountinfo: String) -> String {
        var best: (point: String, type: String)?
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1, omittingEmptySubsequences: false)
            let fields = halves[0].split(separator: " ")
            guard halves.count == 2, fields.count > 4, let type = halves[1].split(separator: " ").first else { continue }
            let point = String(fields[4])
            let inside = point == "/" || path == point || path.hasPrefix(point + "/")
            guard inside, point.count >= (best?.point.count ?? 0) else { continue }
            best = (point, String(type))
        }
        return best?.type ?? "unknown"
    }
}

extension String {
    /// `"x"` or `'x'` → x (os-release values).
    var trimmingQuotes: String {
        guard count >= 2, let f = first, f == "\"" || f == "'", last == f else { return self }
        return String(dropFirst().dropLast())
    }
}
