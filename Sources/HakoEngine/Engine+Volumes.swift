#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import FoundationEssentials
import HakoRuntime
import HakoSystem

/// `hako volume inspect`/`ls`: Docker's shape.
public struct VolumeInfo: Codable, Sendable, Equatable {
    public var Name: String
    public var Driver: String
    public var Mountpoint: String
    public var CreatedAt: String
    public var Labels: [String: String]
    public var Anonymous: Bool
}

public enum Volumes {
    /// Docker's rule for volume names: [a-zA-Z0-9][a-zA-Z0-9_.-]+
    public static func isValidName(_ n: String) -> Bool {
        guard let f = n.first, n.count >= 2, n.count <= 255, f.isASCII, f.isLetter || f.isNumber else { return false }
        return n.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-") }
    }
}

/// A volume is `<root>/volumes/<name>/` holding `volume.json` and `_data/`.
extension EnginePaths {
    public var volumes: String { root + "/volumes" }
    public func volume(_ name: String) -> String { "\(volumes)/\(name)" }
    public func volumeData(_ name: String) -> String { "\(volumes)/\(name)/_data" }
}

extension Engine {
    /// Creates a volume if it does not exist; returns it either way.
    @discardableResult
    public func createVolume(_ name: String? = nil, labels: [String: String] = [:], anonymous: Bool = false) throws -> VolumeInfo {
        let n = name ?? hexString(randomBytes(32))
        guard Volumes.isValidName(n) else { throw HakoError(.invalidArgument("volume name"), "invalid volume name \"\(n)\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed") }
        if let v = volume(n) { return v }
        let info = VolumeInfo(Name: n, Driver: "local", Mountpoint: paths.volumeData(n), CreatedAt: Timestamp.now().rfc3339,
                              Labels: labels, Anonymous: anonymous)
        // Built under .<name>.tmp.<pid> (a name no volume can have) and renamed
        // into place; what a killed create left is removed first.
        FS.removeOrphanedTemporaries(in: paths.volumes)
        let tmp = FS.temporaryPath(for: "\(paths.volumes)/.\(n)")
        try? FS.removeTree(tmp)  // this process's own, of an earlier failed create
        try FS.makeDirectories(tmp + "/_data", mode: 0o755)
        try FS.writeFile(tmp + "/volume.json", try Engine.encoder.encode(info))
        if rename(tmp, paths.volume(n)) != 0 {
            let e = errno
            try? FS.removeTree(tmp)
            if e == EEXIST || e == ENOTEMPTY, let v = volume(n) { return v }  // made meanwhile by another command
            throw SystemError("rename", paths.volume(n), errno: e)
        }
        return info
    }

    func volume(_ name: String) -> VolumeInfo? {
        guard Volumes.isValidName(name), let b = try? FS.readFile(paths.volume(name) + "/volume.json") else { return nil }
        return try? Engine.decoder.decode(VolumeInfo.self, from: b)
    }

    public func volumes() throws -> [VolumeInfo] {
        try FS.list(paths.volumes).filter { !$0.hasPrefix(".") }.compactMap { volume($0) }.sorted { $0.Name < $1.Name }
    }

    public func inspectVolume(_ name: String) throws -> VolumeInfo {
        guard let v = volume(name) else { throw HakoError(.notFound(.volume, name), "no such volume: \(name)") }
        return v
    }

    /// Containers (in any state) whose configuration mounts the volume.
    func containers(usingVolume name: String) -> [String] {
        ((try? list()) ?? []).filter { c in (c.config.storage?.mounts ?? []).contains { $0.kind == .volume && $0.source == name } }.map(\.name)
    }

    /// `hako volume rm`: refused while a container uses the volume.
    public func removeVolume(_ name: String) throws {
        let global = try FileLock.acquire(paths.lock)
        defer { global.release() }
        guard volume(name) != nil else { throw HakoError(.notFound(.volume, name), "no such volume: \(name)") }
        let users = containers(usingVolume: name)
        if !users.isEmpty {
            throw HakoError(.conflict(.inUse(.volume, name, by: users.sorted())), "volume \(name) is in use by container(s) \(users.sorted().joined(separator: ", ")); remove them first")
        }
        try deleteVolumeDir(name)
    }

    func deleteVolumeDir(_ name: String) throws {
        let doomed = "\(paths.volumes)/.removing-\(name)"
        if rename(paths.volume(name), doomed) != 0 && errno != ENOENT { throw SystemError("rename", paths.volume(name)) }
        try FS.removeTree(doomed)
    }

    /// `hako volume prune`: unused anonymous volumes (all unused ones with `all`).
    public func pruneVolumes(all: Bool) throws -> [String] {
        var removed: [String] = []
        for v in try volumes() where (all || v.Anonymous) {
            do { try removeVolume(v.Name); removed.append(v.Name) } catch {}
        }
        return removed
    }

    /// `rm -v`: the container's anonymous volumes go with it.
    func removeAnonymousVolumes(_ config: ContainerConfig) {
        for m in config.storage?.mounts ?? [] where m.kind == .volume && m.anonymous {
            try? deleteVolumeDir(m.source)
        }
    }

    /// The container's own mounts for the launch spec (start path, container
    /// lock held): volumes made on first use, missing -v host paths created.
    func storageMounts(_ config: ContainerConfig, rootfs: String) throws -> [Mount] {
        var out: [Mount] = []
        var mountTable: MountInfo?
        let requests = (config.storage?.mounts ?? []).sorted { $0.target.split(separator: "/").count < $1.target.split(separator: "/").count }
        for m in requests {
            switch m.kind {
            case .bind:
                if !FS.exists(m.source) {
                    guard m.createHostPath else { throw HakoError(.invalidArgument("-v"), "bind source path does not exist: \(m.source)") }
                    try FS.makeDirectories(m.source, mode: 0o755)
                }
                var mount = Mount.bind(m.source, at: m.target, readOnly: m.readOnly)
                let p = m.propagation ?? .rprivate
                if p.receives {
                    let table = try mountTable ?? MountInfo.current()
                    mountTable = table
                    try Self.checkPropagationSource(m.source, p, rootfs: rootfs, mounts: table)
                }
                mount.propagation = p.mountFlags
                out.append(mount)
            case .volume:
                let v = try createVolume(m.source, anonymous: m.anonymous)
                var mount = Mount.bind(v.Mountpoint, at: m.target, readOnly: m.readOnly)
                if !m.noCopy { mount.kind = .volume }
                out.append(mount)
            case .tmpfs:
                var opts: [String] = []
                if m.tmpfsSize > 0 { opts.append("size=\(m.tmpfsSize)") }
                if let mode = m.tmpfsMode { opts.append("mode=\(String(mode, radix: 8))") }
                var flags = HAKO_MS_NOSUID | HAKO_MS_NODEV
                if !m.tmpfsExec { flags |= HAKO_MS_NOEXEC }
                if m.readOnly { flags |= HAKO_MS_RDONLY }
                out.append(.filesystem("tmpfs", at: m.target, options: opts.joined(separator: ","), flags: flags))
            }
        }
        return out
    }
}

extension BindPropagation {
    /// The mount(2) flags: the plain forms change the bind mount alone, the
    /// r- forms its whole tree (every -v bind is recursive, as Docker's).
    var mountFlags: UInt64 {
        let kind: UInt64 = switch self {
        case .private, .rprivate: HAKO_MS_PRIVATE
        case .shared, .rshared: HAKO_MS_SHARED
        case .slave, .rslave: HAKO_MS_SLAVE
        }
        return recursive ? kind | HAKO_MS_REC : kind
    }
}

extension Engine {
    /// Docker's rule: events can cross a bind only when the source's mount
    /// propagates on the host (shared for shared; shared or a slave for slave).
    /// And hako's own: the container's root is set up on the mount that holds
    /// the data root, which the container's namespace makes private (pivot_root
    /// needs that), so a source on that same mount cannot share back.
    static func checkPropagationSource(_ source: String, _ p: BindPropagation, rootfs: String, mounts: MountInfo) throws {
        guard p.receives, let m = mounts.mount(containing: FS.resolved(source) ?? source) else { return }
        if p.sharesBack, !m.propagation.sends {
            throw HakoError(.invalidArgument("bind-propagation"), "invalid bind-propagation \(p.rawValue) for \(source): it is on the mount \(m.mountPoint), which is not a shared mount (mount --make-shared \(m.mountPoint))")
        }
        if !p.sharesBack, !m.propagation.sends, !m.propagation.receives {
            throw HakoError(.invalidArgument("bind-propagation"), "invalid bind-propagation \(p.rawValue) for \(source): it is on the mount \(m.mountPoint), which is neither a shared nor a slave mount")
        }
        if p.sharesBack, let r = mounts.mount(containing: FS.resolved(rootfs) ?? rootfs), r.mountPoint == m.mountPoint {
            throw HakoError(.invalidArgument("bind-propagation"), "invalid bind-propagation \(p.rawValue) for \(source): it is on the mount \(m.mountPoint), which also holds hako's data root; share a directory that is a mount of its own (mount --bind DIR DIR; mount --make-shared DIR)")
        }
    }

    /// At create: a bind's propagation can work with its source as mounted now
    /// (checked again at every start, where the mounts may have changed).
    func checkBindPropagation(_ c: ContainerConfig) throws {
        let binds = (c.storage?.mounts ?? []).filter { $0.kind == .bind && $0.propagation?.receives == true && FS.exists($0.source) }
        guard !binds.isEmpty else { return }
        let table = try MountInfo.current()
        for m in binds {
            if let p = m.propagation { try Self.checkPropagationSource(m.source, p, rootfs: paths.containers, mounts: table) }
        }
    }

    /// The root's propagation inside the container: Docker's rshared when a
    /// bind shares back (its events must reach the host through the container's
    /// copy of the host's tree), else the default rslave.
    static func rootPropagation(_ storage: ContainerStorage?) -> UInt64 {
        let sharesBack = (storage?.mounts ?? []).contains { $0.propagation?.sharesBack == true }
        return HAKO_MS_REC | (sharesBack ? HAKO_MS_SHARED : HAKO_MS_SLAVE)
    }
}

extension Engine {
    /// `hako rm [-v]`: with `volumes`, the container's anonymous volumes go too.
    public func remove(_ ref: String, force: Bool, volumes: Bool) throws {
        let config = volumes ? (try? lookup(ref))?.config : nil
        try remove(ref, force: force)
        if let config { removeAnonymousVolumes(config) }
    }
}
