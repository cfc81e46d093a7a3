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
        try withContainerRoot(ref) { root in try Engine.statPath(in: root, path) }
    }

    /// `hako cp CONTAINER:PATH …`: writes `path` (and for a directory all below
    /// it) as a tar stream whose entries are named after the path's last
    /// component (`etc`, `etc/passwd` …), or `entryName` when given ("." for a
    /// directory's contents alone). Every component is resolved inside
    /// the container's root: "..", absolute and relative symlinks cannot leave
    /// it. A symlink as the last component is archived as the link itself.
    /// Works on running containers (through their mount namespace, volumes
    /// included) and on stopped ones (their overlay, mounted detached).
    @discardableResult
    public func copyOut(_ ref: String, path: String, as entryName: String? = nil, to sink: any ByteSink) throws -> ContainerPathStat {
        try withContainerRoot(ref) { root in
            let stat = try Engine.statPath(in: root, path)
            let (parent, name) = try Engine.openParent(in: root, path)
            do {
                try TreeArchiver(mode: .merged).archive(name, in: parent, as: entryName ?? (stat.name == "/" ? "." : stat.name), to: TarWriter(sink))
            } catch let e as ImageError {
                throw HakoError(.failed, "cannot copy \(path) out of the container: \(e)")
            }
            return stat
        }
    }

    /// `hako cp … CONTAINER:DIR`: unpacks a tar stream into the directory
    /// `directory` inside the container (resolved inside its root, as for
    /// `copyOut`). Entries cannot climb out of that directory, nor write
    /// through a symlink that points out of it.
    public func copyIn(_ ref: String, directory: String, from source: any ByteSource,
                       options: CopyInOptions = CopyInOptions()) throws {
        try withContainerRoot(ref) { root in
            let dir: FileDescriptor
            do {
                dir = try FileDescriptor.openInRoot(root, directory, HAKO_O_PATH | O_DIRECTORY)
            } catch let e as SystemError where e.errno == ENOTDIR {
                throw HakoError(.failed, "cannot copy into \(directory): not a directory")
            } catch let e as SystemError where e.errno == ENOENT {
                throw HakoError(.failed, "cannot copy into \(directory): no such directory in the container")
            }
            let unpacker = LayerUnpacker(options: UnpackOptions(allowDevices: true, preserveOwnership: options.keepOwnership,
                                                                whiteouts: false))
            do {
                _ = try unpacker.unpack(source, into: "/proc/self/fd/\(dir.rawValue)")
            } catch let e as ImageError {
                throw HakoError(.failed, "cannot copy into \(directory): \(e)")
            }
        }
    }

    /// Runs `body` with an fd of the container's root directory. A running
    /// container's is its init's root (/proc/PID/root); a created or exited
    /// one's is its overlay mounted detached (no namespace sees it, it goes
    /// with the fd), the container's lock held so that it cannot start meanwhile.
    func withContainerRoot<T>(_ ref: String, _ body: (FileDescriptor) throws -> T) throws -> T {
        let id = try resolveID(ref)
        var c = try load(id)
        if c.config.effectiveIsolation.userns != nil {
            throw HakoError(.failed, "cannot copy files of container \(c.name): it runs in its own user namespace (--userns), which hako cp does not map yet")
        }
        if c.isRunning, let pid = c.state?.pid, pid > 0 {
            let root = try FileDescriptor.open("/proc/\(pid)/root", HAKO_O_PATH | O_DIRECTORY)
            return try body(root)
        }
        let lock = try FileLock.acquire(c.paths.lock)
        defer { lock.release() }
        c = try load(id)
        guard c.status == .created || c.status == .exited || c.status == .dead else {
            throw HakoError(.failed, "cannot copy files of container \(c.name): it is \(c.status.rawValue); try again")
        }
        if c.config.imageID == ImageStore.hostImageID || c.config.layerDirs.isEmpty {
            throw HakoError(.failed, "cannot copy files of container \(c.name): it has no image layers of its own")
        }
        let overlay = try fitOverlay(OverlayRoot(lower: c.config.layerDirs.reversed(), upper: c.paths.upper, work: c.paths.work))
        let lower = (overlay?.lower ?? []).map { dir in
            var out = ""
            for ch in (overlay?.directory.map { "\($0)/\(dir)" } ?? dir) {
                if ch == ":" || ch == "\\" { out.append("\\") }
                out.append(ch)
            }
            return out
        }.joined(separator: ":")
        let fd = hako_overlay_mount(lower, c.paths.upper, c.paths.work)
        guard fd >= 0 else { throw HakoError(.failed, "cannot mount the file system of container \(c.name)", cause: SystemError("mount overlay", c.paths.upper)) }
        return try body(FileDescriptor(fd))
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
            throw HakoError(.failed, "no such file or directory in the container: \(path)")
        }
    }

    static func statPath(in root: FileDescriptor, _ path: String) throws -> ContainerPathStat {
        let (parent, name) = try openParent(in: root, path)
        var st = Glibc.stat()
        guard fstatat(parent.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { throw HakoError(.failed, "no such file or directory in the container: \(path)") }
            throw HakoError(.failed, "cannot stat \(path) in the container", cause: SystemError("stat", path))
        }
        let target = (st.st_mode & S_IFMT) == S_IFLNK ? (FS.readLink("/proc/self/fd/\(parent.rawValue)/\(name)") ?? "") : ""
        return ContainerPathStat(name: name == "." ? "/" : name, size: Int64(st.st_size), mode: UInt32(st.st_mode),
                                 modified: Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: Int32(st.st_mtim.tv_nsec)),
                                 linkTarget: target)
    }
}
