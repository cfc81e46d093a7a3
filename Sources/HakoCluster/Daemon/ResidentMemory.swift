#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// The daemons run for months on small boards; most of the code they touched
/// while starting (argument parsing, configuration, joining, the TLS
/// handshake) never runs again, and the dynamic linker read the libraries'
/// symbol tables once. Dropping this process's mappings of code and
/// read-only data pages — file-backed, private, not writable, without a
/// private anonymous copy of any page (so nothing was relocated in them) —
/// returns them to the page cache; what runs again faults straight back in.
/// Writable mappings and anything anonymous are never touched.
public enum ResidentMemory {
    /// glibc gives every thread that allocates its own heap arena; a worker
    /// that built a container keeps its arena's high-water mark for good
    /// (the agent's four workers held ~1.1 MB each, idle). A daemon that
    /// allocates little, from a few threads, shares one arena: call before
    /// its threads first allocate.
    public static func shareOneHeapArena() {
        _ = hako_heap_single_arena()
    }

    /// Hands the heap's free pages back to the kernel (malloc_trim(0): the
    /// top of every arena and the free pages inside them), e.g. after a burst
    /// of work that will not recur soon.
    public static func releaseFreeHeap() {
        _ = hako_heap_trim()
    }

    /// madvise(MADV_DONTNEED) on every r-xp and r--p file mapping that holds no anonymous page; the bytes advised.
    @discardableResult
    public static func trimStartupCode() -> Int {
        guard let smaps = try? FS.readString("/proc/self/smaps") else { return 0 }
        var total = 0
        var current: (start: UInt, end: UInt)?
        var clean = true
        func flush() {
            guard let c = current, clean, let p = UnsafeMutableRawPointer(bitPattern: c.start) else { return }
            if madvise(p, Int(c.end - c.start), MADV_DONTNEED) == 0 { total += Int(c.end - c.start) }
        }
        for line in smaps.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = f.first else { continue }
            if first.contains("-") && !first.hasSuffix(":") {
                flush()
                current = nil
                clean = true
                let range = first.split(separator: "-")
                // Only code (r-xp) and read-only data (r--p) backed by a file: not [vdso], not anonymous, not shared.
                guard f.count >= 6, f[1] == "r-xp" || f[1] == "r--p", f[5].hasPrefix("/"), range.count == 2,
                      let s = UInt(range[0], radix: 16), let e = UInt(range[1], radix: 16), e > s else { continue }
                current = (s, e)
            } else if current != nil, first == "Anonymous:" {
                // A private copy of a page (a relocation written into it) makes the mapping off limits.
                if f.count >= 2, f[1] != "0" { clean = false }
            }
        }
        flush()
        return total
    }
}

