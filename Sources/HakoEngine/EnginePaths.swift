#if canImport(Glibc)
import Glibc
#endif
import HakoRuntime
import HakoSystem

/// Where an engine keeps its state: the data root (persistent) and the runtime
/// dir (tmpfs: monitor sockets and locks, gone at reboot as running containers are).
public struct EnginePaths: Sendable, Equatable {
    public var root: String
    public var runRoot: String

    public init(root: String, runRoot: String) {
        self.root = FS.normalize(FS.absolute(root))
        self.runRoot = FS.normalize(FS.absolute(runRoot))
    }

    public static let defaultRoot = "/var/lib/hako"
    public static let defaultRunRoot = "/run/hako"

    /// `--root` / `--run-root`, else HAKO_ROOT / HAKO_RUN_ROOT, else the defaults.
    public static func resolve(root: String?, runRoot: String?) -> EnginePaths {
        func env(_ k: String) -> String? {
            guard let v = getenv(k) else { return nil }
            let s = String(cString: v)
            return s.isEmpty ? nil : s
        }
        return EnginePaths(root: root ?? env("HAKO_ROOT") ?? defaultRoot,
                           runRoot: runRoot ?? env("HAKO_RUN_ROOT") ?? defaultRunRoot)
    }

    public var containers: String { root + "/containers" }
    public var names: String { root + "/names" }
    /// Serialises creating and removing containers (ids, names).
    public var lock: String { root + "/lock" }

    public func container(_ id: String) -> ContainerPaths {
        ContainerPaths(dir: "\(containers)/\(id)", runDir: "\(runRoot)/containers/\(id)")
    }

    public func nameLink(_ name: String) -> String { "\(names)/\(name)" }

    public func ensure() throws {
        for d in [root, containers, names, runRoot, runRoot + "/containers"] {
            try FS.makeDirectories(d, mode: 0o711)
        }
        // Each container's directories in an inode group of their own
        // (FS.markTopOfHierarchies): ~20 inodes are made and freed per
        // container, and on ext4 without a journal the next ones in the same
        // group would be found only past every one freed in the last minutes.
        FS.markTopOfHierarchies(containers)
        FS.markTopOfHierarchies(runRoot + "/containers")
    }
}

/// One container's files.
public struct ContainerPaths: Sendable, Equatable {
    public var dir: String
    public var runDir: String

    public var config: String { dir + "/config.json" }
    public var state: String { dir + "/state.json" }
    /// The health check's live state, written in place after every probe (`MonitorHealthFile`).
    public var health: String { dir + "/" + MonitorHealthFile.name }
    public var log: String { dir + "/container.log" }
    public var lock: String { dir + "/lock" }
    public var rootfs: String { dir + "/rootfs" }
    public var upper: String { dir + "/upper" }
    public var work: String { dir + "/work" }
    public var hostname: String { dir + "/hostname" }
    public var hosts: String { dir + "/hosts" }
    public var resolvConf: String { dir + "/resolv.conf" }
    public var monitorLock: String { runDir + "/monitor.lock" }
}
