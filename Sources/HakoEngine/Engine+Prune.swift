#if canImport(Glibc)
import Glibc
#endif
import HakoImage
import HakoSystem

/// Which stopped containers `container prune` takes (its `--filter`s, parsed by the caller).
public struct ContainerPruneFilter: Sendable, Equatable {
    /// Only containers created before this time.
    public var until: Timestamp?
    /// label=K or label=K=V: all must match; label!=…: none may.
    public var labels: [LabelMatch] = []
    public var notLabels: [LabelMatch] = []

    public init(until: Timestamp? = nil, labels: [LabelMatch] = [], notLabels: [LabelMatch] = []) {
        self.until = until
        self.labels = labels
        self.notLabels = notLabels
    }

    func admits(_ c: ContainerConfig) -> Bool {
        if let until, !(c.created < until) { return false }
        return labels.allSatisfy { $0.matches(c.labels) } && !notLabels.contains { $0.matches(c.labels) }
    }
}

/// `label=KEY` or `label=KEY=VALUE`, as every `--filter label=` takes it.
public struct LabelMatch: Sendable, Equatable {
    public var key: String
    public var value: String?

    public init(key: String, value: String? = nil) {
        self.key = key
        self.value = value
    }

    /// "KEY" or "KEY=VALUE".
    public init(parsing s: String) {
        if let eq = s.firstIndex(of: "=") {
            self.init(key: String(s[..<eq]), value: String(s[s.index(after: eq)...]))
        } else {
            self.init(key: s)
        }
    }

    public func matches(_ labels: [String: String]) -> Bool {
        guard let v = labels[key] else { return false }
        return value.map { $0 == v } ?? true
    }
}

/// What a prune removed.
public struct PruneReport: Sendable, Equatable {
    public var containers: [String] = []
    public var networks: [String] = []
    public var volumes: [String] = []
    public var images = RemovalReport()
    /// Bytes freed: containers' own layers, volumes' data, images' blobs.
    public var reclaimed: Int64 = 0
}

/// `system df`: what hako's storage holds, by kind.
public struct DiskUsage: Sendable {
    public struct ImageUsage: Sendable {
        public var image: Image
        /// Containers (any state) created from it.
        public var containers: Int
    }
    public struct ContainerUsage: Sendable {
        public var container: Container
        /// Bytes of its own layer (the overlay's upper directory).
        public var size: Int64
    }
    public struct VolumeUsage: Sendable {
        public var volume: VolumeInfo
        /// Containers (any state) that mount it.
        public var containers: Int
        public var size: Int64
    }
    public var images: [ImageUsage]
    public var containers: [ContainerUsage]
    public var volumes: [VolumeUsage]
}

extension Engine {
    /// `hako container prune`: removes every stopped container (created, exited
    /// or dead) the filter admits; running, paused and restarting ones stay.
    public func pruneContainers(_ filter: ContainerPruneFilter = ContainerPruneFilter()) throws -> PruneReport {
        var report = PruneReport()
        for c in try list() where (c.status == .created || c.status == .exited || c.status == .dead) && filter.admits(c.config) {
            let size = Engine.treeSize(c.paths.upper)
            do {
                try remove(c.id)
            } catch {
                continue  // started or removed meanwhile
            }
            report.containers.append(c.id)
            report.reclaimed += size
        }
        return report
    }

    /// `hako system prune`: stopped containers, networks no container uses,
    /// dangling images (every unused one with `allImages`) and, with `volumes`,
    /// unused anonymous volumes (every unused one with `allImages` too, as
    /// Docker's `-a --volumes`).
    public func pruneSystem(allImages: Bool, volumes: Bool) throws -> PruneReport {
        var report = try pruneContainers()
        report.networks = try pruneNetworks()
        if volumes {
            let sizes = Dictionary(((try? self.volumes()) ?? []).map { ($0.Name, Engine.treeSize(paths.volumeData($0.Name))) },
                                   uniquingKeysWith: { a, _ in a })
            report.volumes = try pruneVolumes(all: allImages)
            report.reclaimed += report.volumes.reduce(0) { $0 + (sizes[$1] ?? 0) }
        }
        report.images = try pruneImages(all: allImages)
        report.reclaimed += report.images.reclaimed
        return report
    }

    /// `hako system df`: images, containers and volumes with their sizes.
    public func diskUsage() throws -> DiskUsage {
        let containers = try list()
        var imageUsers: [String: Int] = [:]
        for c in containers { imageUsers[c.config.imageID, default: 0] += 1 }
        var volumeUsers: [String: Int] = [:]
        for c in containers {
            for m in c.config.storage?.mounts ?? [] where m.kind == .volume { volumeUsers[m.source, default: 0] += 1 }
        }
        return DiskUsage(
            images: try images.list().filter { !$0.isHost }.map { DiskUsage.ImageUsage(image: $0, containers: imageUsers[$0.id] ?? 0) },
            containers: containers.map { DiskUsage.ContainerUsage(container: $0, size: Engine.treeSize($0.paths.upper)) },
            volumes: try volumes().map { v in
                DiskUsage.VolumeUsage(volume: v, containers: volumeUsers[v.Name] ?? 0, size: Engine.treeSize(paths.volumeData(v.Name)))
            })
    }

    /// Bytes of the regular files and symlinks under `path` (hard links counted
    /// once), walked by fd without following symlinks.
    static func treeSize(_ path: String) -> Int64 {
        guard let root = try? FileDescriptor.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) else { return 0 }
        var seen: Set<String> = []
        func walk(_ dir: FileDescriptor, depth: Int) -> Int64 {
            guard depth < 1024 else { return 0 }
            var total: Int64 = 0
            for name in (try? FS.list("/proc/self/fd/\(dir.rawValue)")) ?? [] {
                var st = stat()
                guard fstatat(dir.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    if let sub = try? FileDescriptor.openAt(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) { total += walk(sub, depth: depth + 1) }
                case S_IFREG, S_IFLNK:
                    if st.st_nlink > 1 && !seen.insert("\(st.st_dev):\(st.st_ino)").inserted { continue }
                    total += Int64(st.st_size)
                default:
                    break
                }
            }
            return total
        }
        return walk(root, depth: 0)
    }
}
