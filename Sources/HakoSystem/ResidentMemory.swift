#if canImport(Glibc)
import Glibc
#endif
import CHakoShim

/// What a long-running process (the cluster's daemons, `hako system
/// service`) gives back once idle. Its own memory is small; most of its
/// resident set is clean pages of the hako binary and the C libraries that
/// starting up (argument parsing, configuration, joining, TLS handshakes, the
/// engine) faulted in — the kernel maps 64 KiB around every fault — and the
/// dynamic linker's one reading of the symbol tables. Those pages are the page
/// cache's: unmapping them costs nothing now and a minor fault when the code
/// runs again. Free heap pages go back too, and every thread can share one
/// heap arena. Writable mappings and any page with a private copy are never
/// touched.
public enum ResidentMemory {
    /// glibc gives every thread that allocates its own heap arena; a worker
    /// that built a container, or a connection's thread, keeps its arena's
    /// high-water mark for good (the agent's four workers held ~1.1 MB each,
    /// idle). A daemon that allocates little, from a few threads, shares one
    /// arena: call before its threads first allocate.
    public static func shareOneHeapArena() {
        _ = hako_heap_single_arena()
    }

    /// Hands the heap's free pages back to the kernel (malloc_trim(0): the
    /// top of every arena and the free pages inside them), e.g. after a burst
    /// of work that will not recur soon.
    public static func releaseFreeHeap() {
        _ = hako_heap_trim()
    }

    /// madvise(MADV_DONTNEED) on every releasable mapping (below); returns
    /// the resident bytes unmapped.
    @discardableResult
    public static func trimStartupCode() -> Int {
        guard let smaps = try? FS.readString("/proc/self/smaps") else { return 0 }
        var released = 0
        for m in mappings(smaps) where m.releasable {
            guard let p = UnsafeMutableRawPointer(bitPattern: m.start) else { continue }
            if madvise(p, Int(m.end - m.start), MADV_DONTNEED) == 0 { released += m.rss }
        }
        return released
    }

    /// Both: the startup code's pages, then the heap's free pages; the
    /// resident bytes of code unmapped.
    @discardableResult
    public static func release() -> Int {
        let released = trimStartupCode()
        releaseFreeHeap()
        return released
    }

    /// One mapping of /proc/PID/smaps with its resident, dirty and anonymous bytes.
    public struct Mapping: Equatable, Sendable {
        public var start: UInt
        public var end: UInt
        public var perms: String
        public var path: String
        public var rss = 0
        public var dirty = 0
        public var anonymous = 0

        /// Never writable, private, backed by a file, resident, with no dirty
        /// page and no private anonymous copy of a page: dropping its pages
        /// loses nothing (a RELRO segment of relocated pointers has anonymous
        /// pages and is left alone, as is anything writable).
        public var releasable: Bool {
            let p = Array(perms.utf8)
            return p.count == 4 && p[1] != UInt8(ascii: "w") && p[3] == UInt8(ascii: "p") && path.hasPrefix("/")
                && rss > 0 && dirty == 0 && anonymous == 0
        }
    }

    /// /proc/PID/smaps → its mappings with their resident, dirty and anonymous bytes.
    public static func mappings(_ smaps: String) -> [Mapping] {
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
            guard fields.count >= 5, range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16), end > start else { continue }
            out.append(Mapping(start: start, end: end, perms: String(fields[1]), path: fields.count > 5 ? fields[5...].joined(separator: " ") : ""))
        }
        return out
    }
}
