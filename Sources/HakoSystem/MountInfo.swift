#if canImport(Glibc)
import Glibc
#endif

/// The mounts of a mount namespace as /proc/PID/mountinfo lists them: where
/// each is mounted and how it propagates (proc(5): the optional fields
/// "shared:N", "master:N", "propagate_from:N", "unbindable").
public struct MountInfo: Sendable, Equatable {
    public enum Propagation: Sendable, Equatable {
        case `private`, shared, slave, sharedAndSlave, unbindable
        /// Events reach this mount from elsewhere (it is a slave of some group).
        public var receives: Bool { self == .slave || self == .sharedAndSlave }
        /// Events on this mount reach its peers.
        public var sends: Bool { self == .shared || self == .sharedAndSlave }
    }

    public struct Entry: Sendable, Equatable {
        public var mountPoint: String
        public var propagation: Propagation
    }

    public var entries: [Entry]

    /// Pure: parses mountinfo text; malformed lines are skipped.
    public static func parse(_ text: String) -> MountInfo {
        var out: [Entry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            // id parent major:minor root mountpoint options [optional…] - fstype source superoptions
            guard fields.count >= 7, let dash = fields.firstIndex(of: "-"), dash >= 6 else { continue }
            var shared = false, slave = false, unbindable = false
            for f in fields[6..<dash] {
                if f.hasPrefix("shared:") { shared = true }
                else if f.hasPrefix("master:") { slave = true }
                else if f == "unbindable" { unbindable = true }
            }
            let p: Propagation = shared && slave ? .sharedAndSlave : shared ? .shared : slave ? .slave : unbindable ? .unbindable : .private
            out.append(Entry(mountPoint: unescape(fields[4]), propagation: p))
        }
        return MountInfo(entries: out)
    }

    /// This process's mounts.
    public static func current() throws -> MountInfo {
        parse(try FS.readString("/proc/self/mountinfo"))
    }

    /// The mount an absolute, resolved path lies on: the last-listed mount at the
    /// longest mount point that contains it (later mounts stack on earlier ones).
    public func mount(containing path: String) -> Entry? {
        var best: Entry?
        for e in entries where Self.contains(e.mountPoint, path) {
            if let b = best, b.mountPoint.utf8.count > e.mountPoint.utf8.count { continue }
            best = e
        }
        return best
    }

    static func contains(_ mountPoint: String, _ path: String) -> Bool {
        if mountPoint == "/" { return path.hasPrefix("/") }
        guard path.hasPrefix(mountPoint) else { return false }
        let rest = path.utf8.dropFirst(mountPoint.utf8.count)
        return rest.isEmpty || rest.first == UInt8(ascii: "/")
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescape(_ s: Substring) -> String {
        guard s.contains("\\") else { return String(s) }
        var bytes: [UInt8] = []
        var u = Array(s.utf8)[...]
        while let b = u.popFirst() {
            if b == UInt8(ascii: "\\"), u.count >= 3 {
                let d = u.prefix(3).map { Int($0) - 48 }
                if d.allSatisfy({ (0...7).contains($0) }) {
                    bytes.append(UInt8(truncatingIfNeeded: d[0] << 6 | d[1] << 3 | d[2]))
                    u = u.dropFirst(3)
                    continue
                }
            }
            bytes.append(b)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
