#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoImage
import HakoRuntime
import HakoSystem

/// One path inside a container, as `hako cp` and Docker's archive endpoints
/// (`X-Docker-Container-Path-Stat`) describe it. The path's last component is
/// not followed when it is a symlink.
public struct ContainerPathStat: Sendable, Equatable, Codable {
    /// The last component of the path as asked ("/" for the root).
    public var name: String
    public var size: Int64
    /// st_mode: type and permission bits.
    public var mode: UInt32
    public var modified: Timestamp
    /// A symlink's target as stored, "" for anything else.
    public var linkTarget: String

    public var isDirectory: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFDIR) }
    public var isSymlink: Bool { mode & UInt32(S_IFMT) == UInt32(S_IFLNK) }
}

/// How a tar stream is written into a container (`hako cp SRC CONTAINER:DST`).
public struct CopyInOptions: Sendable, Equatable {
    /// Give files the uid/gid the archive records (`cp -a`); otherwise they
    /// belong to root, as Docker makes them.
    public var keepOwnership: Bool

    public init(keepOwnership: Bool = false) { self.keepOwnership = keepOwnership }
}

extension Engine {
    /// Stats `path` inside the container; the last component is not followed.
    public func pathStat(_ ref: String, path: String) throws -> ContainerPathStat {
        try withContainerRoot(ref) { root, _ in try Engine.statPath(in: root, path) }
    }

    /// `hako cp CONTAINER:PATH …`: writes `path` (and for a directory all below
    /// it) as a tar stream whose entries are named after the path's last
    /// component (`etc`, `etc/passwd` …), or `entryName` when given ("." for a
    /// directory's contents alone). Every component is resolved inside
    /// the container's root: "..", absolute and relative symlinks cannot leave
    /// it. A symlink as the last component is archived as the link itself.
    /// Works on running containers (through their mount namespace) and on
    /// stopped ones (their overlay and mounts made again), volumes included.
    /// Owners are those the container sees (in its own user namespace: its ids).
    @discardableResult
    public func copyOut(_ ref: String, path: String, as entryName: String? = nil, to sink: any ByteSink) throws -> ContainerPathStat {
        try withContainerRoot(ref) { root, shift in
            let stat = try Engine.statPath(in: root, path)
            let (parent, name) = try Engine.openParent(in: root, path)
            do {
                var archiver = TreeArchiver(mode: .merged)
                archiver.idShift = shift
                try archiver.archive(name, in: parent, as: entryName ?? (stat.name == "/" ? "." : stat.name), to: TarWriter(sink))
            } catch let e as ImageError {
                throw HakoError(e.kind, "cannot copy \(path) out of the container: \(e)")
            }
            return stat
        }
    }

    /// `hako cp … CONTAINER:DIR`: unpacks a tar stream into the directory
    /// `directory` inside the container (resolved inside its root, as for
    /// `copyOut`). Entries cannot climb out of that directory, nor write
    /// through a symlink that points out of it. In a container with its own
    /// user namespace, files get its ids (its root, or with `keepOwnership`
    /// the archive's ids, mapped as the container maps them).
    public func copyIn(_ ref: String, directory: String, from source: any ByteSource,
                       options: CopyInOptions = CopyInOptions()) throws {
        try withContainerRoot(ref) { root, shift in
            let dir: FileDescriptor
            do {
                dir = try FileDescriptor.openInRoot(root, directory, HAKO_O_PATH | O_DIRECTORY)
            } catch let e as SystemError where e.errno == ENOTDIR {
                throw HakoError(.invalidArgument("destination"), "cannot copy into \(directory): not a directory")
            } catch let e as SystemError where e.errno == ENOENT {
                throw HakoError(.notFound(.file, directory), "cannot copy into \(directory): no such directory in the container")
            }
            // A read-only volume or bind, or a --read-only root: refused before anything is written.
            var fs = statvfs()
            if fstatvfs(dir.rawValue, &fs) == 0, fs.f_flag & UInt(ST_RDONLY) != 0 {
                throw HakoError(.permissionDenied, "cannot copy into \(directory): it is on a read-only mount of the container")
            }
            let unpacker = LayerUnpacker(options: UnpackOptions(allowDevices: true, preserveOwnership: options.keepOwnership,
                                                                whiteouts: false, idShift: shift))
            do {
                _ = try unpacker.unpack(source, into: "/proc/self/fd/\(dir.rawValue)")
            } catch let e as ImageError {
                throw HakoError(e.kind, "cannot copy into \(directory): \(e)")
            }
        }
    }

    /// Runs `body` with an fd of the container's root directory and, for a
    /// container in its own user namespace, its slice of host ids. A running
    /// container's root is its init's (/proc/PID/root: its mounts included);
    /// a created or exited one's is its overlay with its volumes, binds and
    /// /etc/hosts, hostname and resolv.conf on it (`copyRoot`), the
    /// container's lock held so that it cannot start meanwhile.
    func withContainerRoot<T>(_ ref: String, _ body: (FileDescriptor, IDShift?) throws -> T) throws -> T {
        let id = try resolveID(ref)
        var c = try load(id)
        let shift = c.config.isolation?.userns?.range.map { IDShift(start: $0.start, count: $0.count) }
        if c.isRunning, let pid = c.state?.pid, pid > 0 {
            let root = try FileDescriptor.open("/proc/\(pid)/root", HAKO_O_PATH | O_DIRECTORY)
            return try body(root, shift)
        }
        let lock = try FileLock.acquire(c.paths.lock)
        defer { lock.release() }
        c = try load(id)
        guard c.status == .created || c.status == .exited || c.status == .dead else {
            throw HakoError(.conflict(.state(.container, c.name)), "cannot copy files of container \(c.name): it is \(c.status.rawValue); try again")
        }
        if c.config.imageID == ImageStore.hostImageID || c.config.layerDirs.isEmpty {
            throw HakoError(.invalidArgument("container"), "cannot copy files of container \(c.name): it has no image layers of its own")
        }
        let (root, namespace) = try copyRoot(c)
        // The namespace's fd held until the copy is done: its mounts live as long as it.
        return try withExtendedLifetime(namespace) { try body(root, shift) }
    }

    /// A stopped container's tree as it sees it running: its overlay (the
    /// layers idmapped as its start maps them, for --userns auto), and on it
    /// the binds of its volumes and -v paths and of /etc/hosts, hostname and
    /// resolv.conf, read-only where the container has them read-only. All of
    /// it in a mount namespace no process is in (hako_copy_root): the host
    /// never sees these mounts, and they go when both fds are closed.
    func copyRoot(_ c: Container) throws -> (root: FileDescriptor, namespace: FileDescriptor) {
        // The binds first: a volume made here can fail, and then no mount is made.
        var binds: [(source: String, target: String, readOnly: Bool)] = []
        let requests = (c.config.storage?.mounts ?? []).sorted { $0.target.split(separator: "/").count < $1.target.split(separator: "/").count }
        for m in requests {
            switch m.kind {
            case .bind:
                // A -v source made at start: a container never started has nothing there yet.
                if FS.exists(m.source) { binds.append((m.source, m.target, m.readOnly)) }
            case .volume:
                // Made on first use, as the start would (docker makes them at create).
                let v = try createVolume(m.source, anonymous: m.anonymous)
                binds.append((v.Mountpoint, m.target, m.readOnly))
            case .tmpfs:
                break  // its files went with the container's last run, as in docker
            }
        }
        for (source, target) in [(c.paths.hostname, "/etc/hostname"), (c.paths.hosts, "/etc/hosts"), (c.paths.resolvConf, "/etc/resolv.conf")]
            where FS.exists(source) && !binds.contains(where: { FS.normalize($0.target) == target }) {
            binds.append((source, target, false))
        }
        clearVolatileMark(c.paths)
        let overlayFD: Int32
        if let u = c.config.isolation?.userns, u.idmapped, let range = u.range {
            let lower = Array(c.config.layerDirs.reversed())
            overlayFD = withCStrings(lower) { hako_overlay_mount_idmapped($0, Int32(lower.count), c.paths.upper, c.paths.work, range.start, range.count) }
        } else {
            let overlay = try fitOverlay(OverlayRoot(lower: c.config.layerDirs.reversed(), upper: c.paths.upper, work: c.paths.work))
            let lower = (overlay?.lower ?? []).map { dir in
                var out = ""
                for ch in (overlay?.directory.map { "\($0)/\(dir)" } ?? dir) {
                    if ch == ":" || ch == "\\" { out.append("\\") }
                    out.append(ch)
                }
                return out
            }.joined(separator: ":")
            overlayFD = hako_overlay_mount(lower, c.paths.upper, c.paths.work)
        }
        guard overlayFD >= 0 else {
            throw HakoError.kernel("cannot mount the file system of container \(c.name)", SystemError("mount overlay", c.paths.upper))
        }
        var nsfd: Int32 = -1, failed: Int32 = -1
        let rootFD = withCStrings(binds.map(\.source)) { sources in
            withCStrings(binds.map(\.target)) { targets in
                var table = (0..<binds.count).map { i in
                    hako_copy_bind(source: sources[i], target: targets[i], read_only: binds[i].readOnly ? 1 : 0)
                }
                return hako_copy_root(overlayFD, c.paths.rootfs, &table, Int32(binds.count), &nsfd, &failed)
            }
        }
        guard rootFD >= 0 else {
            let err = SystemError("mount", failed >= 0 ? binds[Int(failed)].target : c.paths.rootfs)
            if failed >= 0 {
                let b = binds[Int(failed)]
                throw HakoError(.failed, "cannot mount \(b.source) at \(b.target) in container \(c.name) for the copy", cause: err)
            }
            throw HakoError(.failed, "cannot mount the file system of container \(c.name)", cause: err)
        }
        return (FileDescriptor(rootFD), FileDescriptor(nsfd))
    }

    /// The parent directory of `path` (resolved in the root) and the last component,
    /// "." for the root itself.
    static func openParent(in root: FileDescriptor, _ path: String) throws -> (FileDescriptor, String) {
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." }
        // ".." after a symlink is the kernel's business: resolve the parent as written.
        guard let last = parts.last, last != ".." else {
            let dir = try FileDescriptor.openInRoot(root, path.isEmpty ? "/" : path, O_RDONLY | O_DIRECTORY)
            return (dir, ".")
        }
        let parentPath = "/" + parts.dropLast().joined(separator: "/")
        do {
            return (try FileDescriptor.openInRoot(root, parentPath, O_RDONLY | O_DIRECTORY), last)
        } catch let e as SystemError where e.errno == ENOENT || e.errno == ENOTDIR {
            throw HakoError(.notFound(.file, path), "no such file or directory in the container: \(path)")
        }
    }

    static func statPath(in root: FileDescriptor, _ path: String) throws -> ContainerPathStat {
        let (parent, name) = try openParent(in: root, path)
        var st = Glibc.stat()
        guard fstatat(parent.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { throw HakoError(.notFound(.file, path), "no such file or directory in the container: \(path)") }
            throw HakoError.kernel("cannot stat \(path) in the container", SystemError("stat", path))
        }
        let target = (st.st_mode & S_IFMT) == S_IFLNK ? (FS.readLink("/proc/self/fd/\(parent.rawValue)/\(name)") ?? "") : ""
        return ContainerPathStat(name: name == "." ? "/" : name, size: Int64(st.st_size), mode: UInt32(st.st_mode),
                                 modified: Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec)),
                                 linkTarget: target)
    }
}

/// `body` with C copies of `strings` (valid only inside it).
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { for p in copies { free(p) } }
    return body(copies.map { UnsafePointer($0) })
}
