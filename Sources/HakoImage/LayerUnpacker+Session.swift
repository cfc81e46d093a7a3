#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// Overlay whiteout conventions inside layer tars.
enum Whiteout {
    static let prefix = ".wh."
    static let metaPrefix = ".wh..wh."
    static let opaqueMarker = ".wh..wh..opq"
    static let opaqueXattr = "trusted.overlay.opaque"
}

/// The state of one unpack: the root, a cache of the last parent directory,
/// the directories whose mtimes are set at the end, the whiteouts created.
final class UnpackSession {
    let root: FileDescriptor
    let options: UnpackOptions
    private(set) var contentSize: Int64 = 0
    var warnings: [String] = []

    /// The last parent directory opened, by its clean path.
    private var cachedParent: (path: String, fd: FileDescriptor)?
    /// Directories (by clean path, "" for the root) and their mtimes, applied
    /// after all content, since adding children changes them. The last entry
    /// for a directory wins, as in tar.
    private var directoryTimes: [String: Timestamp] = [:]
    /// Whiteout devices this layer created, by clean path.
    private var whiteouts: Set<String> = []
    private let buffer: UnsafeMutableRawBufferPointer

    init(root: FileDescriptor, options: UnpackOptions) {
        self.root = root
        self.options = options
        buffer = .allocate(byteCount: 65536, alignment: 16)
    }

    deinit { buffer.deallocate() }

    // MARK: entries

    func apply(_ entry: TarEntry, content reader: TarReader) throws {
        guard !entry.path.utf8.contains(0), !entry.linkTarget.utf8.contains(0) else {
            throw ImageError.unsafeEntry(path: entry.path, reason: "its name or link target contains a NUL byte")
        }
        guard let parts = LayerUnpacker.cleanPath(entry.path) else {
            throw ImageError.unsafeEntry(path: entry.path, reason: "its path climbs above the layer root")
        }
        // An owner the container cannot have is refused before the entry is made.
        if let shift = options.idShift, options.preserveOwnership, shift.host(entry.uid) == nil || shift.host(entry.gid) == nil {
            throw ImageError.corrupt("\(entry.path): owner \(entry.uid):\(entry.gid) cannot be mapped into the container's user namespace (its ids are 0 to \(shift.count - 1))")
        }
        guard let name = parts.last else {
            guard entry.kind == .directory else {
                throw ImageError.unsafeEntry(path: entry.path, reason: "a non-directory cannot replace the layer root")
            }
            try applyMetadata(entry, at: rootNode, path: entry.path)
            directoryTimes[""] = entry.modified
            return
        }
        let parentParts = Array(parts.dropLast())
        if options.whiteouts && parentParts.contains(where: { $0.hasPrefix(Whiteout.prefix) }) {
            throw ImageError.unsafeEntry(path: entry.path, reason: "a whiteout name is used as a directory")
        }
        if options.whiteouts && name.hasPrefix(Whiteout.prefix) {
            try applyWhiteout(entry, parentParts: parentParts, name: name)
            return
        }
        if (entry.kind == .characterDevice || entry.kind == .blockDevice) && !options.allowDevices {
            throw ImageError.unsafeEntry(path: entry.path, reason: "device nodes are not allowed in image layers")
        }
        let parent = try openParent(parentParts, for: entry.path)
        let key = parts.joined(separator: "/")
        let node = Node(dirfd: parent.rawValue, name: name)

        if entry.kind == .hardlink {
            try applyHardlink(entry, parts: parts, parent: parent, name: name, key: key)
            return
        }
        let replacedWhiteout = whiteouts.remove(key) != nil
        // Fast path, the usual case: nothing of that name yet. The entry is
        // created at once (O_EXCL, mkdirat, symlinkat: no stat first); only
        // EEXIST takes the path below, which looks at what is there.
        if !replacedWhiteout, try createNew(entry, parent: parent, name: name, node: node, key: key, content: reader) {
            return
        }
        let existing = try FileTree.status(parent.rawValue, name)
        var keptDirectory = false
        if let existing {
            if entry.kind == .symlink && FileTree.isDirectory(existing) {
                throw ImageError.unsafeEntry(path: entry.path, reason: "a symlink cannot replace a directory of the same layer")
            }
            if entry.kind == .directory && FileTree.isDirectory(existing) {
                keptDirectory = true
            } else {
                try removeExisting(parent, name)
            }
        }
        switch entry.kind {
        case .directory:
            if !keptDirectory {
                try sys("mkdir", name) { mkdirat(parent.rawValue, name, 0o700) }
            }
            try applyMetadata(entry, at: node, path: entry.path)
            if replacedWhiteout {
                // The whiteout meant "nothing below survives"; the new directory must hide lower ones.
                try setXattr(node, Whiteout.opaqueXattr, Array("y".utf8), path: entry.path)
            }
            directoryTimes[key] = entry.modified
            return
        case .regular:
            guard try writeFile(entry, parent: parent, name: name, content: reader) else {
                throw ImageError.entryFailed(path: entry.path, reason: "it was created again while it was unpacked")
            }
            return
        case .symlink:
            try sys("symlink", name) { symlinkat(entry.linkTarget, parent.rawValue, name) }
        case .characterDevice, .blockDevice:
            let type = entry.kind == .characterDevice ? S_IFCHR : S_IFBLK
            let dev = FileTree.makeDevice(entry.deviceMajor, entry.deviceMinor)
            try sys("mknod", name) { mknodat(parent.rawValue, name, type | 0o600, dev) }
        case .fifo:
            try sys("mkfifo", name) { mknodat(parent.rawValue, name, S_IFIFO | 0o600, 0) }
        case .hardlink:
            break
        }
        try applyMetadata(entry, at: node, path: entry.path, isSymlink: entry.kind == .symlink)
        try setTimes(node, entry.modified, path: entry.path)
    }

    /// Sets every directory's mtime, now that nothing is added to them any more.
    func finish() throws {
        for (key, time) in directoryTimes {
            let parts = key.split(separator: "/").map(String.init)
            let shown = key.isEmpty ? "/" : key
            guard let name = parts.last else {
                try setTimes(rootNode, time, path: shown)
                continue
            }
            // The directory may have been replaced later in the archive: skip it then.
            guard let parent = try? openExistingDirectory(Array(parts.dropLast())),
                  let st = try FileTree.status(parent.rawValue, name), FileTree.isDirectory(st) else { continue }
            try setTimes(Node(dirfd: parent.rawValue, name: name), time, path: shown)
        }
    }

    // MARK: kinds

    /// Creates an entry whose name is free: false (nothing done) when the
    /// name exists. Directories, regular files and symlinks; other kinds
    /// always take the slow path.
    private func createNew(_ entry: TarEntry, parent: FileDescriptor, name: String, node: Node, key: String,
                           content reader: TarReader) throws -> Bool {
        switch entry.kind {
        case .regular:
            return try writeFile(entry, parent: parent, name: name, content: reader)
        case .directory:
            if mkdirat(parent.rawValue, name, 0o700) != 0 {
                if errno == EEXIST { return false }
                throw SystemError("mkdir", entry.path)
            }
            try applyMetadata(entry, at: node, path: entry.path)
            directoryTimes[key] = entry.modified
            return true
        case .symlink:
            if symlinkat(entry.linkTarget, parent.rawValue, name) != 0 {
                if errno == EEXIST { return false }
                throw SystemError("symlink", entry.path)
            }
            try applyMetadata(entry, at: node, path: entry.path, isSymlink: true)
            try setTimes(node, entry.modified, path: entry.path)
            return true
        default:
            return false
        }
    }

    /// A regular file, made complete through its own fd: created (O_EXCL)
    /// with the entry's permission bits (0600 in a tree others can reach),
    /// written, then owner, mode, extended
    /// attributes and times, each only where the new file does not already
    /// have it (a file root creates is root's; a mode the umask left alone
    /// needs no chmod). False when the name exists.
    private func writeFile(_ entry: TarEntry, parent: FileDescriptor, name: String, content reader: TarReader) throws -> Bool {
        let createMode = options.privateRoot ? mode_t(entry.mode & 0o777) : 0o600
        let raw = openat(parent.rawValue, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, createMode)
        if raw < 0 {
            if errno == EEXIST { return false }
            throw SystemError("open", entry.path)
        }
        let fd = FileDescriptor(raw)
        defer { fd.close() }
        while true {
            let n = try reader.read(into: buffer)
            if n == 0 { break }
            try fd.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            contentSize += Int64(n)
        }
        var st = stat()
        try sys("stat", entry.path) { fstat(fd.rawValue, &st) }
        // Ownership first (chown clears setuid/setgid), then the mode.
        if let target = try owner(entry, path: entry.path), st.st_uid != target.uid || st.st_gid != target.gid {
            try sys("chown", entry.path) { fchown(fd.rawValue, target.uid, target.gid) }
            st.st_mode &= ~mode_t(S_ISUID | S_ISGID)
        }
        let mode = mode_t(entry.mode & 0o7777)
        if st.st_mode & 0o7777 != mode {
            try sys("chmod", entry.path) { fchmod(fd.rawValue, mode) }
        }
        try applyXattrs(entry, at: Node(dirfd: parent.rawValue, name: name), path: entry.path)
        // Last: nothing written after this changes the mtime.
        let ts = timespec(tv_sec: .init(clamping: entry.modified.seconds), tv_nsec: .init(entry.modified.nanoseconds))
        try sys("futimens", entry.path) { futimens(fd.rawValue, [ts, ts]) }
        return true
    }

    private func applyHardlink(_ entry: TarEntry, parts: [String], parent: FileDescriptor, name: String, key: String) throws {
        guard let targetParts = LayerUnpacker.cleanPath(entry.linkTarget), let targetName = targetParts.last else {
            throw ImageError.unsafeEntry(path: entry.path, reason: "hardlink target \"\(entry.linkTarget)\" is outside the layer")
        }
        if targetParts == parts { return }  // a link to itself: nothing to do
        let missing = ImageError.unsafeEntry(
            path: entry.path, reason: "hardlink target \"\(entry.linkTarget)\" does not exist in this layer")
        guard !whiteouts.contains(targetParts.joined(separator: "/")),
              let targetParent = try? openExistingDirectory(Array(targetParts.dropLast())),
              let st = try FileTree.status(targetParent.rawValue, targetName) else { throw missing }
        if FileTree.isDirectory(st) {
            throw ImageError.unsafeEntry(path: entry.path, reason: "hardlink target \"\(entry.linkTarget)\" is a directory")
        }
        if try FileTree.status(parent.rawValue, name) != nil {
            whiteouts.remove(key)
            try removeExisting(parent, name)
        }
        try sys("link", name) { linkat(targetParent.rawValue, targetName, parent.rawValue, name, 0) }
    }

    private func applyWhiteout(_ entry: TarEntry, parentParts: [String], name: String) throws {
        if name == Whiteout.opaqueMarker {
            // The directory hides every lower layer's content; this layer's stays.
            let dir = try openParent(parentParts, for: entry.path)
            let node = parentParts.isEmpty ? rootNode : Node(path: "/proc/self/fd/\(dir.rawValue)")
            try setXattr(node, Whiteout.opaqueXattr, Array("y".utf8), path: entry.path)
            return
        }
        if name.hasPrefix(Whiteout.metaPrefix) { return }  // other AUFS metadata (.wh..wh.plnk …): not content
        let hidden = String(name.dropFirst(Whiteout.prefix.count))
        guard !hidden.isEmpty, hidden != ".", hidden != ".." else {
            throw ImageError.unsafeEntry(path: entry.path, reason: "whiteout for an invalid name")
        }
        let parent = try openParent(parentParts, for: entry.path)
        let key = (parentParts + [hidden]).joined(separator: "/")
        if whiteouts.contains(key) { return }
        if let existing = try FileTree.status(parent.rawValue, hidden) {
            // This layer has its own NAME: it already hides the lower one; a
            // directory must also stop lower content from merging through.
            if FileTree.isDirectory(existing) {
                try setXattr(Node(dirfd: parent.rawValue, name: hidden), Whiteout.opaqueXattr, Array("y".utf8), path: entry.path)
            }
            return
        }
        try sys("mknod", hidden) { mknodat(parent.rawValue, hidden, S_IFCHR, FileTree.makeDevice(0, 0)) }
        whiteouts.insert(key)
    }

    // MARK: directories

    private func removeExisting(_ parent: FileDescriptor, _ name: String) throws {
        try FileTree.remove(parent.rawValue, name)
        // A removed directory or symlink may be on the cached parent's path.
        cachedParent = nil
    }

    /// Opens (creating missing directories, mode 0755) the parent directory of
    /// an entry, every component resolved inside the root.
    private func openParent(_ parts: [String], for path: String) throws -> FileDescriptor {
        let joined = parts.joined(separator: "/")
        if let cached = cachedParent, cached.path == joined { return cached.fd }
        let fd: FileDescriptor
        if parts.isEmpty {
            fd = root
        } else {
            // Fast path: the directory exists and is reached without leaving
            // the root; openat2(RESOLVE_BENEATH) in one call. Anything else
            // (missing, or through a symlink pointing out) takes the slow walk.
            let raw = hako_openat2(root.rawValue, joined, O_PATH_FLAG | O_DIRECTORY | O_CLOEXEC, 0, LayerUnpacker.resolveBeneath)
            fd = raw >= 0 ? FileDescriptor(raw) : try makeDirectories(parts, for: path)
        }
        cachedParent = (joined, fd)
        return fd
    }

    /// mkdir -p of `parts` inside the root, one component at a time with
    /// `*at` calls that never follow the component itself. A symlink met on
    /// the way is followed only when it stays inside the layer (a relative
    /// target that does not climb above the root); one that points out
    /// (absolute, or climbing) is refused: writing through it is the classic
    /// layer escape, and no tar made by walking a tree ever needs it.
    private func makeDirectories(_ parts: [String], for path: String) throws -> FileDescriptor {
        var stack: [FileDescriptor] = [root]            // the directories from the root down
        var pending = Array(parts.reversed())           // components still to walk; next is last
        var walked: [String] = []                       // for messages
        var followed: (link: String, target: String)?   // the last symlink followed, for messages
        var steps = 0
        while let component = pending.popLast() {
            steps += 1
            guard steps <= 4096 else {
                throw ImageError.unsafeEntry(path: path, reason: "too many levels of symbolic links in its parent")
            }
            if component.isEmpty || component == "." { continue }
            if component == ".." {
                guard stack.count > 1 else {
                    let (link, target) = followed ?? (walked.joined(separator: "/"), "..")
                    throw ImageError.unsafeEntry(
                        path: path, reason: "its parent \"\(link)\" is a symlink pointing out of the layer (to \"\(target)\")")
                }
                stack.removeLast()
                continue
            }
            guard let current = stack.last else { break }
            walked.append(component)
            guard let st = try FileTree.status(current.rawValue, component) else {
                if mkdirat(current.rawValue, component, 0o755) != 0 && errno != EEXIST {
                    throw ImageError.entryFailed(
                        path: path, reason: "cannot create its parent \"\(walked.joined(separator: "/"))\": \(String(cString: strerror(errno)))")
                }
                pending.append(component)  // now open it
                walked.removeLast()
                continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                stack.append(try FileDescriptor.openAt(current, component, O_PATH_FLAG | O_DIRECTORY | O_NOFOLLOW, mode: 0))
            case S_IFLNK:
                let target = try FileTree.readLink(current.rawValue, component)
                guard !target.hasPrefix("/") else {
                    throw ImageError.unsafeEntry(
                        path: path, reason: "its parent \"\(walked.joined(separator: "/"))\" is a symlink pointing out of the layer (to \"\(target)\")")
                }
                followed = (walked.joined(separator: "/"), target)
                walked.removeLast()
                pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
            default:
                throw ImageError.entryFailed(path: path, reason: "its parent \"\(walked.joined(separator: "/"))\" is not a directory")
            }
        }
        return stack.last ?? root
    }

    /// Opens an existing directory inside the root (nothing is created, no
    /// symlink leaving the root is followed).
    private func openExistingDirectory(_ parts: [String]) throws -> FileDescriptor {
        if parts.isEmpty { return root }
        let path = parts.joined(separator: "/")
        return FileDescriptor(try sys("open", path) {
            hako_openat2(root.rawValue, path, O_PATH_FLAG | O_DIRECTORY | O_CLOEXEC, 0, LayerUnpacker.resolveBeneath)
        })
    }

    private var rootNode: Node { Node(path: "/proc/self/fd/\(root.rawValue)") }
}
