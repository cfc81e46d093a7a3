#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// What an idle service gives back. Its own memory is small (~0.5 MB private
/// dirty); most of its resident set is clean pages of the hako binary and the
/// C libraries that starting up (the command line, the engine) faulted in —
/// the kernel maps 64 KiB around every fault. Those pages are the page
/// cache's: unmapping them costs nothing now and a minor fault when a request
/// uses the code again. Free heap pages go back too, and all threads share
/// one heap arena (a connection's thread would otherwise keep its own
/// arena's high-water mark). The cluster's daemons do the same
/// (HakoCluster's `ResidentMemory`, which this layer cannot import).
enum IdleMemory {
    /// One heap arena for every thread: call before the first connection.
    static func shareOneHeapArena() {
        _ = hako_heap_single_arena()
    }

    /// Unmaps the clean pages of read-only, private, file-backed mappings and
    /// trims the heap; returns the resident bytes unmapped.
    @discardableResult
    static func release() -> Int {
        var released = 0
        if let smaps = try? FS.readString("/proc/self/smaps") {
            for m in mappings(smaps) where m.releasable {
                if madvise(UnsafeMutableRawPointer(bitPattern: m.start), Int(m.end - m.start), MADV_DONTNEED) == 0 { released += m.rss }
            }
        }
        _ = hako_heap_trim()
        return released
    }

    struct Mapping: Equatable {
        var start: UInt
        var end: UInt
        var perms: String
        var path: String
        var rss = 0
        var dirty = 0
        var anonymous = 0

        /// Never written, never writable, backed by a file: dropping its pages
        /// loses nothing (a RELRO segment of relocated pointers has anonymous
        /// pages and is left alone, as is anything writable).
        var releasable: Bool {
            let p = Array(perms.utf8)
            return p.count == 4 && p[1] != UInt8(ascii: "w") && p[3] == UInt8(ascii: "p") && path.hasPrefix("/")
                && rss > 0 && dirty == 0 && anonymous == 0
        }
    }

    /// /proc/PID/smaps → its mappings with their resident, dirty and anonymous bytes.
    static func mappings(_ smaps: String) -> [Mapping] {
        var out: [Mapping] = []
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.hasSuffix(":") {
                guard !out.isEmpty, fields.count >= 2, let kib = Int(fields[1]) else { continue }
                switch first {
                case "Rss:": out[out.count - 1].rss = kib * 1024
                case "Private_Dirty:", "Shared_Dirty:": out[out.count - 1].dirty += kib * 1024
                case "Anonymous:": out[out.count - 1].anonymous = kib * 1024
                default: break
                }
                continue
            }
            let range = first.split(separator: "-")
            guard fields.count >= 5, range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16) else { continue }
            out.append(Mapping(start: start, end: end, perms: String(fields[1]), path: fields.count > 5 ? fields[5...].joined(separator: " ") : ""))
        }
        return out
    }
}
