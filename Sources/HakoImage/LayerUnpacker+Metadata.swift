#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// A file-system object to change: `name` inside the directory `dirfd`, never
/// followed; or (for the layer root and directories opened by fd) a path whose
/// final component is a /proc/self/fd magic link that must be followed.
struct Node {
    let dirfd: Int32
    let name: String
    let follow: Bool

    init(dirfd: Int32, name: String) {
        self.dirfd = dirfd
        self.name = name
        self.follow = false
    }

    init(path: String) {
        dirfd = AT_FDCWD
        name = path
        follow = true
    }

    /// A path naming the object for syscalls without an *at form (xattrs).
    var path: String { follow ? name : "/proc/self/fd/\(dirfd)/\(name)" }
    var atFlags: Int32 { follow ? 0 : AT_SYMLINK_NOFOLLOW }
}

extension UnpackSession {
    /// Ownership, then mode (chown clears setuid/setgid), then extended
    /// attributes (chown also clears security.capability). Times are separate.
    func applyMetadata(_ entry: TarEntry, at node: Node, path: String, isSymlink: Bool = false) throws {
        if let target = try owner(entry, path: path) {
            try sys("chown", path) { fchownat(node.dirfd, node.name, target.uid, target.gid, node.atFlags) }
        }
        if !isSymlink {
            // Symlink modes are meaningless on Linux (and fchmodat cannot skip following them).
            try sys("chmod", path) { fchmodat(node.dirfd, node.name, mode_t(entry.mode & 0o7777), 0) }
        }
        try applyXattrs(entry, at: node, path: path)
    }

    /// The host owner an entry gets; nil when ownership is left as created
    /// (neither kept from the archive nor shifted into a user namespace).
    func owner(_ entry: TarEntry, path: String) throws -> (uid: uid_t, gid: gid_t)? {
        if let shift = options.idShift {
            let (uid, gid) = options.preserveOwnership ? (entry.uid, entry.gid) : (0, 0)
            guard let hostUID = shift.host(uid), let hostGID = shift.host(gid) else {
                throw ImageError.corrupt("\(path): owner \(uid):\(gid) cannot be mapped into the container's user namespace (its ids are 0 to \(shift.count - 1))")
            }
            return (hostUID, hostGID)
        }
        guard options.preserveOwnership else { return nil }
        return (entry.uid, entry.gid)
    }

    /// The archive's extended attributes; after ownership (chown clears security.capability).
    func applyXattrs(_ entry: TarEntry, at node: Node, path: String) throws {
        for (name, value) in entry.xattrs.sorted(by: { $0.key < $1.key }) {
            if name.hasPrefix("trusted.overlay.") {
                // Overlay's own attributes (opaque, redirect, metacopy) come only from whiteouts.
                warnings.append("\(path): ignored extended attribute \(name) from the archive")
                continue
            }
            let required = name.hasPrefix("user.") || name.hasPrefix("trusted.") || name == "security.capability"
            do {
                try setXattr(node, name, value, path: path)
            } catch let e as ImageError where !required {
                warnings.append(e.description)
            }
        }
    }

    func setXattr(_ node: Node, _ name: String, _ value: [UInt8], path: String) throws {
        if Xattr.set(node.path, name, value, follow: node.follow) != 0 {
            throw ImageError.entryFailed(path: path, reason: "setting extended attribute \(name): \(String(cString: strerror(errno)))")
        }
    }

    /// atime and mtime both from the archive's mtime (as Docker does).
    func setTimes(_ node: Node, _ time: Timestamp, path: String) throws {
        // Clamped: time_t is 32 bits on some arm systems, and archives may hold any value.
        let ts = timespec(tv_sec: .init(clamping: time.seconds), tv_nsec: .init(time.nanoseconds))
        let times = [ts, ts]
        try sys("utimensat", path) { utimensat(node.dirfd, node.name, times, node.atFlags) }
    }
}
