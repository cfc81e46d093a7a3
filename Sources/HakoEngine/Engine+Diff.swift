#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// One change a container made to its image's file system (`hako diff`).
public struct FileChange: Sendable, Equatable, Codable {
    /// Docker's letters and numbers (the API's Kind: 0 modified, 1 added, 2 deleted).
    public enum Kind: String, Sendable, Codable {
        case changed = "C", added = "A", deleted = "D"

        public var apiValue: Int { self == .changed ? 0 : self == .added ? 1 : 2 }
    }

    public var kind: Kind
    /// Absolute, inside the container.
    public var path: String
}

extension Engine {
    /// `hako diff`: what the container added, changed and deleted, read from its
    /// overlay's upper directory against its image's layers (running or not),
    /// sorted by path. The files the runtime mounts (/etc/hosts …) and the mount
    /// points it makes are left out, as Docker leaves out its init layer.
    public func diff(_ ref: String) throws -> [FileChange] {
        let c = try lookup(ref)
        let upper = try FileDescriptor.open(c.paths.upper, O_RDONLY | O_DIRECTORY)
        let lowers = c.config.layerDirs.reversed().compactMap { try? FileDescriptor.open($0, O_RDONLY | O_DIRECTORY) }
        var out: [FileChange] = []
        try Engine.walkUpper(upper, lowers: lowers, path: "", depth: 0, into: &out)
        return out.sorted { $0.path < $1.path }
    }

    static func walkUpper(_ dir: FileDescriptor, lowers: [FileDescriptor], path: String, depth: Int, into out: inout [FileChange]) throws {
        guard depth < 1024 else { return }
        for name in try FS.list("/proc/self/fd/\(dir.rawValue)") {
            let rel = path.isEmpty ? name : path + "/" + name
            if runtimeMountPoints.contains(rel) { continue }
            var st = stat()
            guard fstatat(dir.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            let inLower = lowers.first { l in
                var ls = stat()
                return fstatat(l.rawValue, name, &ls, AT_SYMLINK_NOFOLLOW) == 0
            }
            let isWhiteout = (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0
            if isWhiteout {
                if inLower != nil { out.append(FileChange(kind: .deleted, path: "/" + rel)) }
                continue
            }
            out.append(FileChange(kind: inLower == nil ? .added : .changed, path: "/" + rel))
            guard (st.st_mode & S_IFMT) == S_IFDIR, let sub = try? FileDescriptor.openAt(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) else { continue }
            // The lower directories of the same path, for the children's comparison;
            // an opaque directory hides them all.
            var flag: UInt8 = 0
            let opaque = hako_lgetxattr("/proc/self/fd/\(dir.rawValue)/\(name)", "trusted.overlay.opaque", &flag, 1) == 1 && flag == UInt8(ascii: "y")
            let subLowers = opaque ? [] : lowers.compactMap { try? FileDescriptor.openAt($0, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) }
            if opaque, let first = inLower, let hidden = try? FileDescriptor.openAt(first, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) {
                // What the opaque directory hides is deleted, unless the upper has it again.
                let kept = Set((try? FS.list("/proc/self/fd/\(sub.rawValue)")) ?? [])
                for n in (try? FS.list("/proc/self/fd/\(hidden.rawValue)")) ?? [] where !kept.contains(n) {
                    out.append(FileChange(kind: .deleted, path: "/" + rel + "/" + n))
                }
            }
            try walkUpper(sub, lowers: subLowers, path: rel, depth: depth + 1, into: &out)
        }
    }
}
