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

    /// The entry at `components` (a path whose symlinks the caller resolved
    /// with `resolve`), from the top layer that has it. Each layer's ancestors
    /// are checked with lstat one by one first, so the kernel never follows a
    /// link inside a layer: an ancestor that is missing skips the layer; one
    /// that is a whiteout or not a directory hides everything below; an opaque
    /// one hides the layers below it.
    func entry(_ components: [String]) -> Entry? {
        layers: for layer in layers {
            var prefix = layer
            var opaque = false
            for c in components.dropLast() {
                prefix += "/" + c
                var pst = stat()
                guard lstat(prefix, &pst) == 0 else { continue layers }
                if LayeredRoot.isWhiteout(pst) || (pst.st_mode & S_IFMT) != S_IFDIR { return nil }
                if LayeredRoot.isOpaque(prefix) { opaque = true }
            }
            let path = components.isEmpty ? layer : prefix + "/" + (components.last ?? "")
            var st = stat()
            if lstat(path, &st) == 0 {
                if LayeredRoot.isWhiteout(st) { return nil }
                return Entry(hostPath: path, st: st)
            }
            if opaque { return nil }
        }
        return nil
    }

    /// The names in a directory of the view, sorted.
    func list(_ components: [String]) -> [String] {
        var names: Set<String> = []
        var hidden: Set<String> = []
        layers: for layer in layers {
            // The directory and its ancestors, each checked as `entry` does.
            var path = layer
            var opaque = false
            for c in components {
                path += "/" + c
                var st = stat()
                guard lstat(path, &st) == 0 else { continue layers }
                if LayeredRoot.isWhiteout(st) || (st.st_mode & S_IFMT) != S_IFDIR { break layers }
                if LayeredRoot.isOpaque(path) { opaque = true }
            }
            for name in (try? FS.list(path)) ?? [] where !hidden.contains(name) && !names.contains(name) {
                var cst = stat()
                if lstat(path + "/" + name, &cst) == 0, LayeredRoot.isWhiteout(cst) {
                    hidden.insert(name)
                } else {
                    names.insert(name)
                }
            }
            if opaque { break }
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
