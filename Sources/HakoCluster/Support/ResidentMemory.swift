#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// The daemons run for months on small boards; most of the code they touched
/// while starting (argument parsing, configuration, joining, the TLS
/// handshake) never runs again. Dropping this process's mappings of code
/// pages — executable, file-backed, without a private anonymous copy of any
/// page (so nothing was relocated in them) — returns them to the page cache; the code that runs
/// again faults straight back in. Data mappings are never touched.
public enum ResidentMemory {
    /// madvise(MADV_DONTNEED) on every r-xp file mapping that holds no anonymous page; the bytes advised.
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
                // Only code (r-xp) backed by a file: not [vdso], not anonymous.
                guard f.count >= 6, f[1] == "r-xp", f[5].hasPrefix("/"), range.count == 2,
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
