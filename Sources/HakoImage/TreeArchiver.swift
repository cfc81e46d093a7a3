#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// Writes a directory tree as a tar stream, in one of two ways:
///
/// - `.diff`: one overlay upper directory as an image layer: overlay
///   whiteouts (0/0 character devices) become `.wh.NAME` entries, opaque
///   directories (`trusted.overlay.opaque=y`) get a `.wh..wh..opq` entry
///   (`commit`);
/// - `.merged`: a stack of layers (top first) as the one file system they
///   make: whiteouts hide, opaque directories stop lower layers (`export`).
///
/// Every directory and file is opened relative to its parent's fd and never
/// followed (`O_NOFOLLOW`): a running container that swaps a directory for a
/// symlink meanwhile cannot make hako read outside its layers. Names are
/// sorted, so the same tree gives the same bytes (and the same DiffID).
public struct TreeArchiver {
    public enum Mode: Sendable { case diff, merged }

    public let mode: Mode
    /// Clean relative paths ("etc/hosts", "proc") left out with everything below them.
    public var exclude: Set<String>
    /// Owners written as the container sees them (a container with its own
    /// user namespace; nil: as stored).
    public var idShift: IDShift?
    public static let maxDepth = 1024

    public init(mode: Mode, exclude: Set<String> = []) {
        self.mode = mode
        self.exclude = exclude
    }

    /// Archives `layers` (absolute directories, the top one first; `.diff`
    /// takes exactly one) into `tar`, then finishes it.
    public func archive(_ layers: [String], to tar: TarWriter) throws {
        guard !layers.isEmpty, mode == .merged || layers.count == 1 else {
            throw ImageError.corrupt("a diff archive takes exactly one directory")
        }
        let fds = try layers.map { try FileDescriptor.open($0, O_RDONLY | O_DIRECTORY) }
        let session = Session(mode: mode, exclude: exclude, tar: tar, idShift: idShift)
        try session.walk(fds.map { Source(fd: $0) }, path: "", depth: 0)
        try tar.finish()
    }

    /// Archives one node, `name` in the directory `parent` (never followed if
    /// it is a symlink), and for a directory everything below it, as entries
    /// named `entryName` and `entryName/…` (`hako cp` out of a container).
    public func archive(_ name: String, in parent: FileDescriptor, as entryName: String, to tar: TarWriter) throws {
        var st = stat()
        try sys("stat", name) { fstatat(parent.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) }
        let session = Session(mode: .merged, exclude: exclude, tar: tar, idShift: idShift)
        try session.write(name: name, path: entryName, st: st, in: parent)
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let fd = try FileDescriptor.openAt(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            try session.walk([Source(fd: fd)], path: entryName, depth: 1)
        }
        try tar.finish()
    }

    struct Source {
        let fd: FileDescriptor
    }

    final class Session {
        let mode: Mode
        let exclude: Set<String>
        let tar: TarWriter
        let idShift: IDShift?
        /// (device, inode) of regular files already written → their path: later ones become hardlinks.
        var seen: [String: String] = [:]
        let buffer: UnsafeMutableRawBufferPointer

        init(mode: Mode, exclude: Set<String>, tar: TarWriter, idShift: IDShift?) {
            self.mode = mode
            self.exclude = exclude
            self.tar = tar
            self.idShift = idShift
            buffer = .allocate(byteCount: 1 << 20, alignment: 16)
        }

        deinit { buffer.deallocate() }

        static func isWhiteout(_ st: stat) -> Bool {
            (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0
        }

        /// Whether `name` in the directory `fd` is an opaque directory.
        static func isOpaque(_ fd: Int32, _ name: String) -> Bool {
            Xattr.get("/proc/self/fd/\(fd)/\(name)", Whiteout.opaqueXattr) == Array("y".utf8)
        }

        /// The sorted names in a directory.
        func names(_ fd: FileDescriptor) throws -> [String] {
            let dupfd = try sys("dup") { fcntl(fd.rawValue, F_DUPFD_CLOEXEC, 0) }
            guard let dir = fdopendir(dupfd) else {
                close(dupfd)
                throw SystemError("fdopendir")
            }
            defer { closedir(dir) }
            rewinddir(dir)
            var out: [String] = []
            while let e = readdir(dir) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name != "." && name != ".." { out.append(name) }
            }
            return out.sorted()
        }

        /// Writes the children of one directory. `sources` are the layers
        /// that hold this directory, top first (one in `.diff` mode).
        func walk(_ sources: [Source], path: String, depth: Int) throws {
            guard depth < TreeArchiver.maxDepth else {
                throw ImageError.entryFailed(path: path, reason: "directories nested deeper than \(TreeArchiver.maxDepth) levels")
            }
            var names: [String] = []
            var seenNames: Set<String> = []
            for s in sources { for n in try self.names(s.fd) where seenNames.insert(n).inserted { names.append(n) } }
            names.sort()
            for name in names {
                let child = path.isEmpty ? name : path + "/" + name
                if exclude.contains(child) { continue }
                // The topmost layer that has this name decides what it is.
                var childSources: [Source] = []
                var top: (Source, stat)?
                for s in sources {
                    var st = stat()
                    guard fstatat(s.fd.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                        if errno == ENOENT { continue }
                        throw SystemError("stat", child)
                    }
                    if top == nil { top = (s, st) }
                    guard mode == .merged else { break }
                    // Below the top entry, only directories merge, and only until an
                    // opaque one or a layer with a non-directory (whiteout or file) there.
                    guard (st.st_mode & S_IFMT) == S_IFDIR, (top.map { ($0.1.st_mode & S_IFMT) == S_IFDIR } ?? false) else { break }
                    let fd = try FileDescriptor.openAt(s.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
                    childSources.append(Source(fd: fd))
                    if Session.isOpaque(s.fd.rawValue, name) { break }
                }
                guard let (source, st) = top else { continue }
                if Session.isWhiteout(st) {
                    if mode == .diff {
                        try tar.append(TarEntry(path: (path.isEmpty ? "" : path + "/") + Whiteout.prefix + name,
                                                kind: .regular, mode: 0o600, modified: Timestamp(seconds: Int64(st.st_mtim.tv_sec))))
                    }
                    continue
                }
                try write(name: name, path: child, st: st, in: source.fd)
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    if mode == .diff {
                        let fd = try FileDescriptor.openAt(source.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
                        if Session.isOpaque(source.fd.rawValue, name) {
                            try tar.append(TarEntry(path: child + "/" + Whiteout.opaqueMarker, kind: .regular, mode: 0o600,
                                                    modified: Timestamp(seconds: Int64(st.st_mtim.tv_sec))))
                        }
                        childSources = [Source(fd: fd)]
                    }
                    try walk(childSources, path: child, depth: depth + 1)
                }
            }
        }

        /// One entry, its metadata taken from the layer that holds it.
        func write(name: String, path: String, st: stat, in dir: FileDescriptor) throws {
            let kind: TarEntry.Kind
            switch st.st_mode & S_IFMT {
            case S_IFREG: kind = .regular
            case S_IFDIR: kind = .directory
            case S_IFLNK: kind = .symlink
            case S_IFCHR: kind = .characterDevice
            case S_IFBLK: kind = .blockDevice
            case S_IFIFO: kind = .fifo
            default: return  // sockets do not go into archives
            }
            var entry = TarEntry(path: path, kind: kind, mode: UInt32(st.st_mode & 0o7777),
                                 uid: idShift?.inside(st.st_uid) ?? st.st_uid, gid: idShift?.inside(st.st_gid) ?? st.st_gid,
                                 modified: Timestamp(seconds: Int64(st.st_mtim.tv_sec)))
            let node = "/proc/self/fd/\(dir.rawValue)/\(name)"
            for attr in Xattr.names(node) where !attr.hasPrefix("trusted.overlay.") {
                if let value = Xattr.get(node, attr) { entry.xattrs[attr] = value }
            }
            switch kind {
            case .symlink:
                entry.linkTarget = try FileTree.readLink(dir.rawValue, name)
            case .characterDevice, .blockDevice:
                entry.deviceMajor = UInt32((st.st_rdev >> 8) & 0xfff) | UInt32((st.st_rdev >> 32) & 0xffff_f000)
                entry.deviceMinor = UInt32(st.st_rdev & 0xff) | UInt32((st.st_rdev >> 12) & 0xffff_ff00)
            case .regular:
                if st.st_nlink > 1 {
                    let key = "\(st.st_dev):\(st.st_ino)"
                    if let first = seen[key] {
                        entry.kind = .hardlink
                        entry.linkTarget = first
                        try tar.append(entry)
                        return
                    }
                    seen[key] = path
                }
                let fd = try FileDescriptor.openAt(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
                var now = stat()
                try sys("fstat", path) { fstat(fd.rawValue, &now) }
                guard (now.st_mode & S_IFMT) == S_IFREG else {
                    throw ImageError.entryFailed(path: path, reason: "changed from a file to something else while it was archived")
                }
                entry.size = Int64(now.st_size)
                try tar.append(entry)
                do {
                    try tar.copyContent(from: fd, buffer: buffer)
                } catch ImageError.entryFailed(_, let reason) {
                    throw ImageError.entryFailed(path: path, reason: reason)
                }
                return
            default:
                break
            }
            try tar.append(entry)
        }
    }
}
