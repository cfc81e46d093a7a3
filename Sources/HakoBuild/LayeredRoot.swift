#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// A read-only view of the file system a stack of overlay layer directories
/// makes (top first), without mounting it: whiteouts (0/0 character
/// devices) hide, opaque directories stop the layers below. Symbolic links
/// are resolved by this type inside the view's root, never by the kernel,
/// so a link in an image or a context cannot lead outside it.
struct LayeredRoot {
    /// Layer directories, the top one first.
    let layers: [String]

    struct Entry {
        /// The host path of the entry in the layer that provides it.
        var hostPath: String
        var st: stat
        var isDirectory: Bool { (st.st_mode & S_IFMT) == S_IFDIR }
        var isSymlink: Bool { (st.st_mode & S_IFMT) == S_IFLNK }
        var isRegular: Bool { (st.st_mode & S_IFMT) == S_IFREG }
    }

    static func isWhiteout(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0 }

    static func isOpaque(_ path: String) -> Bool {
        var v = [UInt8](repeating: 0, count: 4)
        let n = v.withUnsafeMutableBytes { hako_lgetxattr(path, "trusted.overlay.opaque", $0.baseAddress, 4) }
        return n == 1 && v[0] == UInt8(ascii: "y")
    }

    /// The layers that can provide `components` (a path already free of
    /// symlinks): from the top down to the first that has an opaque ancestor
    /// directory or a whiteout on the way.
    func entry(_ components: [String]) -> Entry? {
        let rel = components.joined(separator: "/")
        for layer in layers {
            let path = rel.isEmpty ? layer : layer + "/" + rel
            var st = stat()
            if lstat(path, &st) == 0 {
                if LayeredRoot.isWhiteout(st) { return nil }
                return Entry(hostPath: path, st: st)
            }
            // Hidden below: an ancestor whited out or opaque in this layer.
            var prefix = layer
            for c in components.dropLast() {
                prefix += "/" + c
                var pst = stat()
                guard lstat(prefix, &pst) == 0 else { break }
                if LayeredRoot.isWhiteout(pst) { return nil }
                if (pst.st_mode & S_IFMT) == S_IFDIR, LayeredRoot.isOpaque(prefix) { return nil }
            }
        }
        return nil
    }

    /// The names in a directory of the view, sorted.
    func list(_ components: [String]) -> [String] {
        var names: Set<String> = []
        var hidden: Set<String> = []
        let rel = components.joined(separator: "/")
        for layer in layers {
            let path = rel.isEmpty ? layer : layer + "/" + rel
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            if LayeredRoot.isWhiteout(st) || (st.st_mode & S_IFMT) != S_IFDIR { break }
            for name in (try? FS.list(path)) ?? [] where !hidden.contains(name) && !names.contains(name) {
                var cst = stat()
                if lstat(path + "/" + name, &cst) == 0, LayeredRoot.isWhiteout(cst) {
                    hidden.insert(name)
                } else {
                    names.insert(name)
                }
            }
            if LayeredRoot.isOpaque(path) { break }
        }
        return names.sorted()
    }

    /// Cleaned components of an absolute or relative path ("." and ".." applied, never above the root).
    static func components(_ path: String) -> [String] {
        var out: [String] = []
        for p in path.split(separator: "/") {
            if p == "." || p.isEmpty { continue }
            if p == ".." { if !out.isEmpty { out.removeLast() }; continue }
            out.append(String(p))
        }
        return out
    }

    /// `path` with every symbolic link in it resolved inside the root (the
    /// last component's too when `followLast`); components that do not exist
    /// are kept as they are. Nil after 40 links (a loop).
    func resolve(_ path: String, followLast: Bool = true) -> [String]? {
        var pending = LayeredRoot.components(path)
        var done: [String] = []
        var links = 0
        while !pending.isEmpty {
            let c = pending.removeFirst()
            let candidate = done + [c]
            guard let e = entry(candidate) else { return candidate + pending }
            guard e.isSymlink, followLast || !pending.isEmpty else {
                done = candidate
                continue
            }
            links += 1
            guard links <= 40, let target = FS.readLink(e.hostPath) else { return nil }
            // Walked again from the root: a relative target is relative to `done`.
            let base = target.hasPrefix("/") ? [] : done
            pending = LayeredRoot.components((base + [target]).joined(separator: "/")) + pending
            done = []
        }
        return done
    }
}
