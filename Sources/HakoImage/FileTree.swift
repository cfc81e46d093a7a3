#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// Small *at-syscall helpers the image layer needs beyond HakoSystem.
enum FileTree {
    /// lstat relative to a directory fd; nil when the name does not exist.
    static func status(_ dirfd: Int32, _ name: String) throws -> stat? {
        var st = stat()
        if fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 { return st }
        if errno == ENOENT { return nil }
        throw SystemError("stat", name)
    }

    /// readlinkat.
    static func readLink(_ dirfd: Int32, _ name: String) throws -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = try sys("readlink", name) { readlinkat(dirfd, name, &buf, buf.count - 1) }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func isDirectory(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFDIR }

    /// rm -rf of `name` in `dirfd`, never following a symlink; absent is fine.
    /// Iterative, so a deep tree cannot exhaust the stack (it holds one fd
    /// per level; an absurdly deep tree fails with EMFILE instead).
    static func remove(_ dirfd: Int32, _ name: String) throws {
        guard let st = try status(dirfd, name) else { return }
        guard isDirectory(st) else {
            try sys("unlink", name) { unlinkat(dirfd, name, 0) }
            return
        }
        // Each level: the open directory, and the name it has in its parent.
        var stack: [(fd: Int32, dir: OpaquePointer, name: String)] = []
        defer { for level in stack { closedir(level.dir) } }
        func push(_ parent: Int32, _ child: String) throws {
            let fd = try sys("open", child) { openat(parent, child, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            guard let dir = fdopendir(fd) else {
                let e = errno
                close(fd)
                throw SystemError("fdopendir", child, errno: e)
            }
            stack.append((fd, dir, child))
        }
        try push(dirfd, name)
        while let top = stack.last {
            errno = 0
            if let entry = readdir(top.dir) {
                let child = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if child == "." || child == ".." { continue }
                var childIsDir = entry.pointee.d_type == UInt8(DT_DIR)
                if entry.pointee.d_type == UInt8(DT_UNKNOWN), let cst = try status(top.fd, child) {
                    childIsDir = isDirectory(cst)
                }
                if childIsDir {
                    try push(top.fd, child)
                } else if unlinkat(top.fd, child, 0) != 0 && errno != ENOENT {
                    throw SystemError("unlink", child)
                }
                continue
            }
            if errno != 0 { throw SystemError("readdir", top.name) }
            stack.removeLast()
            closedir(top.dir)
            let parent = stack.last?.fd ?? dirfd
            if unlinkat(parent, top.name, AT_REMOVEDIR) != 0 && errno != ENOENT {
                throw SystemError("rmdir", top.name)
            }
        }
    }

    /// rm -rf of an absolute or relative path (no symlink followed at its end).
    static func remove(path: String) throws {
        try remove(AT_FDCWD, path)
    }

    /// Flushes a directory's entries (after a rename into it).
    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    /// Flushes the whole file system holding `path` (syncfs), so an unpacked
    /// snapshot is on disk before it is published. Best effort.
    static func syncFilesystem(containing path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = hako_syncfs(fd)
        close(fd)
    }

    /// Linux's dev_t encoding (glibc's gnu_dev_makedev).
    static func makeDevice(_ major: UInt32, _ minor: UInt32) -> dev_t {
        let ma = UInt64(major), mi = UInt64(minor)
        return dev_t(((ma & 0xffff_f000) << 32) | ((ma & 0x0000_0fff) << 8)
                     | ((mi & 0xffff_ff00) << 12) | (mi & 0x0000_00ff))
    }

    /// A random name component (hex), for temp files and dirs.
    static func randomName(_ prefix: String) -> String {
        prefix + hexString(randomBytes(8))
    }

    /// mkdir that accepts an existing directory.
    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws {
        if mkdir(path, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", path) }
    }
}

/// O_PATH, which the Glibc Swift module hides.
let O_PATH_FLAG: Int32 = HAKO_O_PATH

/// Extended attributes through CHakoShim (<sys/xattr.h> is not in the Glibc module).
enum Xattr {
    /// setxattr (follow: true) or lsetxattr; 0 or -1 with errno.
    static func set(_ path: String, _ name: String, _ value: [UInt8], follow: Bool) -> Int32 {
        value.withUnsafeBytes { v in hako_setxattr(path, name, v.baseAddress, v.count, follow ? 1 : 0) }
    }

    /// llistxattr: the names of a file's extended attributes (none when unreadable).
    static func names(_ path: String) -> [String] {
        let size = hako_llistxattr(path, nil, 0)
        guard size > 0 else { return [] }
        var buf = [CChar](repeating: 0, count: size)
        let n = hako_llistxattr(path, &buf, size)
        guard n > 0 else { return [] }
        return buf[0..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
    }

    /// lgetxattr: the value, or nil (errno set) when absent or unreadable.
    static func get(_ path: String, _ name: String) -> [UInt8]? {
        let size = hako_lgetxattr(path, name, nil, 0)
        guard size >= 0 else { return nil }
        var out = [UInt8](repeating: 0, count: size)
        let n = out.withUnsafeMutableBytes { hako_lgetxattr(path, name, $0.baseAddress, size) }
        guard n >= 0 else { return nil }
        out.removeSubrange(n...)
        return out
    }
}
