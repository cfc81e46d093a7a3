#if canImport(Glibc)
import Glibc
#endif

/// File-system helpers over plain syscalls (no Foundation), used on hot paths.
public enum FS {
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func readFile(_ path: String) throws -> [UInt8] {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        return try fd.readAll()
    }

    public static func readString(_ path: String) throws -> String {
        String(decoding: try readFile(path), as: UTF8.self)
    }

    /// Writes a file whole: to a temporary name in the same directory, then
    /// renamed over the target, so readers see the old or the new content only.
    /// `durable` adds an fsync of the file before the rename.
    /// The temporary name is `temporaryPath(for:)`: a writer killed before the
    /// rename leaves it, and `removeOrphanedTemporaries` finds it by its pid.
    public static func writeAtomic(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644, durable: Bool = true) throws {
        let tmp = temporaryPath(for: path)
        let fd = try FileDescriptor.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        do {
            try fd.write(bytes)
            if durable { try sys("fsync", tmp) { fsync(fd.rawValue) } }
            fd.close()
            try sys("rename", path) { rename(tmp, path) }
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// The name this process writes `path` under before renaming it into
    /// place: `<path>.tmp.<pid>`, so that whoever next owns the directory can
    /// tell a dead writer's leftover from a file being written.
    public static func temporaryPath(for path: String) -> String { path + ".tmp.\(getpid())" }

    /// The writer's pid in a name made by `temporaryPath(for:)`; nil for any other name.
    public static func temporaryWriter(_ name: String) -> pid_t? {
        guard let dot = name.lastIndex(of: "."), name[..<dot].hasSuffix(".tmp") else { return nil }
        return pid(name[name.index(after: dot)...])
    }

    /// A pid written in decimal at the end of a name; nil for anything else.
    public static func pid(_ digits: Substring) -> pid_t? {
        guard !digits.isEmpty, digits.count <= 10, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
              let pid = pid_t(digits), pid > 0 else { return nil }
        return pid
    }

    /// The directory part of a path ("." for a bare name).
    public static func parentDirectory(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Whether a process with this pid exists (EPERM: it does, owned by another user).
    public static func processExists(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// Removes what writers killed between create and rename left in `dir`:
    /// the `temporaryPath(for:)` files (or directories) whose pid is gone. A live writer's file
    /// stays (its pid exists); a reused pid only delays the clean-up.
    /// `names`: the directory's listing when the caller has it already;
    /// `prefix`: only names that start with it (in a directory hako does not own).
    @discardableResult
    public static func removeOrphanedTemporaries(in dir: String, names: [String]? = nil, prefix: String = "") -> Int {
        var removed = 0
        for name in names ?? ((try? list(dir)) ?? []) where name.hasPrefix(prefix) {
            guard let pid = temporaryWriter(name), pid != getpid(), !processExists(pid) else { continue }
            let path = dir + "/" + name
            if unlink(path) == 0 || (errno == EISDIR && (try? removeTree(path)) != nil) { removed += 1 }
        }
        return removed
    }

    /// Creates (or truncates) a file and writes it; no atomicity of its own.
    public static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        try fd.write(bytes)
    }

    public static func writeAtomic(_ path: String, _ string: String, mode: mode_t = 0o644, durable: Bool = true) throws {
        try writeAtomic(path, Array(string.utf8), mode: mode, durable: durable)
    }

    /// mkdir -p; existing directories are fine. Tries the leaf first: on the
    /// common path (parent exists) that is one syscall.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        if path.isEmpty || path == "/" { return }
        if mkdir(path, mode) == 0 { return }
        switch errno {
        case EEXIST:
            if isDirectory(path) { return }
            throw SystemError("mkdir", path, errno: EEXIST)
        case ENOENT:
            let parent = String(path[..<(path.utf8.lastIndex(of: UInt8(ascii: "/")) ?? path.startIndex)])
            if !parent.isEmpty { try makeDirectories(parent, mode: mode) }
            if mkdir(path, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", path) }
        default:
            throw SystemError("mkdir", path)
        }
    }

    /// Names in a directory (no "." or ".."); an absent directory has none.
    public static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            if errno == ENOENT { return [] }
            throw SystemError("opendir", path)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// rm -rf without following symlinks; an absent path is fine.
    public static func removeTree(_ path: String) throws {
        var st = stat()
        if lstat(path, &st) != 0 {
            if errno == ENOENT { return }
            throw SystemError("lstat", path)
        }
        try removeEntry(parent: AT_FDCWD, name: path, isDirectory: (st.st_mode & S_IFMT) == S_IFDIR)
    }

    private static func removeEntry(parent: Int32, name: String, isDirectory: Bool) throws {
        if !isDirectory {
            if unlinkat(parent, name, 0) != 0 && errno != ENOENT { throw SystemError("unlink", name) }
            return
        }
        let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return }
            throw SystemError("open", name)
        }
        guard let dir = fdopendir(fd) else { close(fd); throw SystemError("fdopendir", name) }
        var children: [(String, Bool)] = []
        while let entry = readdir(dir) {
            let child = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if child == "." || child == ".." { continue }
            var isDir = entry.pointee.d_type == UInt8(DT_DIR)
            if entry.pointee.d_type == UInt8(DT_UNKNOWN) {
                var st = stat()
                isDir = fstatat(dirfd(dir), child, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
            }
            children.append((child, isDir))
        }
        let dfd = dirfd(dir)
        var failure: (any Error)?
        for (child, isDir) in children {
            do { try removeEntry(parent: dfd, name: child, isDirectory: isDir) } catch { failure = failure ?? error }
        }
        closedir(dir)
        if let failure { throw failure }
        if unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT { throw SystemError("rmdir", name) }
    }

    public static func symlink(_ target: String, at path: String) throws {
        try sys("symlink", path) { Glibc.symlink(target, path) }
    }

    public static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count - 1)
        if n < 0 { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func unlinkIfPresent(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw SystemError("unlink", path) }
    }

    /// The absolute form of `path` against the working directory (no symlink resolution).
    /// The path with every symbolic link resolved (realpath(3)); nil when it does not exist.
    public static func resolved(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    public static func absolute(_ path: String) -> String {
        // The first byte: hasPrefix compares by Unicode's rules.
        if path.utf8.first == UInt8(ascii: "/") { return normalize(path) }
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buf, buf.count) != nil else { return normalize("/" + path) }
        return normalize(cString(buf) + "/" + path)
    }

    /// Lexical clean-up: collapses "//", "." and "..", never going above "/".
    /// By bytes: split and joined as Substrings it cost ~60 k instructions a
    /// call, five calls on every engine's start.
    public static func normalize(_ path: String) -> String {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        let b = Array(path.utf8)
        var out: [UInt8] = [slash]
        out.reserveCapacity(b.count + 1)
        var starts: [Int] = []  // where each kept component begins in `out` (its "/", but for the first)
        var i = 0
        while i < b.count {
            while i < b.count && b[i] == slash { i += 1 }
            var j = i
            while j < b.count && b[j] != slash { j += 1 }
            let n = j - i
            if n == 0 || (n == 1 && b[i] == dot) {
                // empty or "."
            } else if n == 2 && b[i] == dot && b[i + 1] == dot {
                if let s = starts.popLast() { out.removeSubrange(s...) }
            } else {
                starts.append(out.count)
                if out.count > 1 { out.append(slash) }
                out.append(contentsOf: b[i..<j])
            }
            i = j
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// An advisory lock on a file (flock), released when the value is dropped.
public final class FileLock: @unchecked Sendable {
    private let fd: FileDescriptor

    private init(fd: FileDescriptor) { self.fd = fd }

    /// Blocks until the exclusive lock is held.
    public static func acquire(_ path: String, shared: Bool = false) throws -> FileLock {
        let fd = try FileDescriptor.open(path, O_RDWR | O_CREAT, mode: 0o600)
        try sys("flock", path) { flock(fd.rawValue, shared ? LOCK_SH : LOCK_EX) }
        return FileLock(fd: fd)
    }

    /// Takes the lock if nobody holds it; nil when it is held elsewhere.
    public static func tryAcquire(_ path: String, create: Bool = true) throws -> FileLock? {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(path, O_RDWR | (create ? O_CREAT : 0), mode: 0o600)
        } catch let e as SystemError where e.errno == ENOENT && !create {
            return nil
        }
        if flock(fd.rawValue, LOCK_EX | LOCK_NB) != 0 {
            if errno == EWOULDBLOCK { return nil }
            throw SystemError("flock", path)
        }
        return FileLock(fd: fd)
    }

    /// Whether some process holds a lock on an existing file (without keeping it).
    public static func isHeld(_ path: String) -> Bool {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return false }
        defer { Glibc.close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) != 0 { return errno == EWOULDBLOCK }
        flock(fd, LOCK_UN)
        return false
    }

    public func release() { fd.close() }
}

/// ext4's "top of directory hierarchies" flag (chattr +T, FS_TOPDIR_FL), set
/// on a directory whose subdirectories are unrelated trees that come and go
/// (snapshots being unpacked, containers): ext4's Orlov allocator then puts
/// each subdirectory in a block group of its own with free inodes, instead of
/// next to its parent. Without it each new tree lands in the group of the
/// ones before; on ext4 without a journal, each new inode is then found only
/// after skipping every inode freed there in the last minutes (a snapshot or
/// a container just removed): a scan per file that grows with how many came
/// and went (docs/benchmarks.md). Best effort: other file systems ignore or
/// refuse it.
extension FS {
    public static func markTopOfHierarchies(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { Glibc.close(fd) }
        var flags: Int32 = 0
        guard ioctl(fd, InodeFlags.get, &flags) == 0, flags & InodeFlags.topDirectory == 0 else { return }
        flags |= InodeFlags.topDirectory
        _ = ioctl(fd, InodeFlags.set, &flags)
    }

    /// The inode flags of a directory (lsattr); nil where the file system has none.
    public static func inodeFlags(ofDirectory path: String) -> Int32? {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var flags: Int32 = 0
        return ioctl(fd, InodeFlags.get, &flags) == 0 ? flags : nil
    }

    /// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS: _IOR/_IOW('f', 1/2, long); the kernel reads and writes an int.
    public enum InodeFlags {
        static let get: UInt = (2 << 30) | (UInt(MemoryLayout<Int>.size) << 16) | (0x66 << 8) | 1
        static let set: UInt = (1 << 30) | (UInt(MemoryLayout<Int>.size) << 16) | (0x66 << 8) | 2
        public static let topDirectory: Int32 = 0x0002_0000  // FS_TOPDIR_FL
    }
}

/// A Swift string from a NUL-terminated C buffer.
public func cString(_ buf: [CChar]) -> String {
    let end = buf.firstIndex(of: 0) ?? buf.count
    return String(decoding: buf[0..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
