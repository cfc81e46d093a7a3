#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// A copy of a layer tree with every owner moved into a container's id range:
/// what `--userns auto` uses where the kernel cannot idmap the layers.
/// Hard links stay hard links, extended attributes are kept (but
/// `security.capability`, which names the host's root), devices, whiteouts
/// (0:0 devices), fifos and sockets are made again, times are kept.
public enum ShiftedCopy {
    /// Deeper than any real image; a guard against a tree that loops.
    static let maximumDepth = 256

    /// Copies `source` (a directory) to `destination` (absent), owners
    /// `id` → `start + min(id, count - 1)`.
    /// - Throws: `SystemError` naming the call and the path that failed.
    public static func copy(from source: String, to destination: String, start: UInt32, count: UInt32) throws {
        var copier = Copier(start: start, count: max(count, 1))
        try copier.entry(source, destination, depth: 0)
    }

    private struct Copier {
        let start: UInt32
        let count: UInt32
        /// (device, inode) of a multiply linked file → its first copy.
        var links: [FileIdentity: String] = [:]

        struct FileIdentity: Hashable { var device: UInt64; var inode: UInt64 }

        init(start: UInt32, count: UInt32) {
            self.start = start
            self.count = count
        }

        func shifted(_ id: UInt32) -> UInt32 { start &+ min(id, count - 1) }

        mutating func entry(_ src: String, _ dst: String, depth: Int) throws {
            var st = stat()
            guard lstat(src, &st) == 0 else { throw SystemError("lstat", src) }
            let type = st.st_mode & S_IFMT
            if type != S_IFDIR && st.st_nlink > 1 {
                let id = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
                if let first = links[id] {
                    guard link(first, dst) == 0 else { throw SystemError("link", dst) }
                    return
                }
                links[id] = dst
            }
            switch type {
            case S_IFDIR:
                guard mkdir(dst, 0o700) == 0 else { throw SystemError("mkdir", dst) }
            case S_IFREG:
                try copyContents(src, dst, mode: st.st_mode & 0o777)
            case S_IFLNK:
                guard let target = FS.readLink(src) else { throw SystemError("readlink", src) }
                guard Glibc.symlink(target, dst) == 0 else { throw SystemError("symlink", dst) }
            default:
                // Devices, whiteouts (0:0 character devices), fifos, sockets.
                guard mknod(dst, st.st_mode, st.st_rdev) == 0 else { throw SystemError("mknod", dst) }
            }
            try copyExtendedAttributes(src, dst)
            if type == S_IFDIR {
                guard depth < ShiftedCopy.maximumDepth else { throw SystemError("copy", src, errno: ELOOP) }
                for name in try FS.list(src) {
                    try entry(src + "/" + name, dst + "/" + name, depth: depth + 1)
                }
            }
            // Owner first: chown clears setuid and setgid; the mode comes after.
            guard lchown(dst, shifted(st.st_uid), shifted(st.st_gid)) == 0 else { throw SystemError("chown", dst) }
            if type != S_IFLNK {
                guard chmod(dst, st.st_mode & 0o7777) == 0 else { throw SystemError("chmod", dst) }
            }
            var times = [st.st_atim, st.st_mtim]
            _ = utimensat(AT_FDCWD, dst, &times, AT_SYMLINK_NOFOLLOW)
        }

        /// The file's bytes.
        func copyContents(_ src: String, _ dst: String, mode: mode_t) throws {
            let input = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard input >= 0 else { throw SystemError("open", src) }
            defer { close(input) }
            let output = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            guard output >= 0 else { throw SystemError("open", dst) }
            do {
                try copyThroughBuffer(input, output, dst)
            } catch {
                close(output)
                throw error
            }
            guard close(output) == 0 else { throw SystemError("close", dst) }
        }

        func copyThroughBuffer(_ input: Int32, _ output: Int32, _ dst: String) throws {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
            defer { buffer.deallocate() }
            guard let base = buffer.baseAddress else { return }
            while true {
                let r = read(input, base, buffer.count)
                if r < 0 { if errno == EINTR { continue }; throw SystemError("read", dst) }
                if r == 0 { return }
                var written = 0
                while written < r {
                    let w = write(output, base + written, r - written)
                    if w < 0 { if errno == EINTR { continue }; throw SystemError("write", dst) }
                    written += w
                }
            }
        }

        func copyExtendedAttributes(_ src: String, _ dst: String) throws {
            // A file capability names the host's uid 0; the copy's owner is the shifted root.
            for name in Xattr.names(src) where name != "security.capability" {
                guard let value = Xattr.get(src, name) else { continue }
                if Xattr.set(dst, name, value, follow: false) != 0 && errno != ENOTSUP && errno != EPERM {
                    throw SystemError("setxattr \(name)", dst)
                }
            }
        }
    }
}
