import HakoSystem

/// A range of host uids (and the same gids): [start, start + count).
public struct IDRange: Sendable, Equatable, Codable, CustomStringConvertible {
    public var start: UInt32
    public var count: UInt32

    public init(start: UInt32, count: UInt32) { self.start = start; self.count = count }

    public var end: UInt64 { UInt64(start) + UInt64(count) }
    public var description: String { "\(start):\(count)" }

    public func overlaps(_ o: IDRange) -> Bool { UInt64(start) < o.end && UInt64(o.start) < end }

    /// "START:COUNT".
    public init(parsing s: String) throws {
        let f = s.split(separator: ":", omittingEmptySubsequences: false)
        guard f.count == 2, let a = UInt32(f[0]), let n = UInt32(f[1]), n > 0, UInt64(a) + UInt64(n) <= UInt64(UInt32.max) else {
            throw HakoError(.invalidArgument("id range"), "invalid id range \"\(s)\" (expected START:COUNT within 0…4294967295)")
        }
        self.init(start: a, count: n)
    }
}

/// Subordinate id ranges for `--userns auto`: each container gets its own,
/// never overlapping another's, from one pool.
public enum IDRangeAllocator {
    /// The pool when none is configured: 2^30 … 2^31, far above the ranges
    /// /etc/subuid hands to people (100000 + 65536·n), room for 16384 containers.
    public static let defaultPool = IDRange(start: 1 << 30, count: 1 << 30)
    /// Ids per container unless `--userns auto:size=N` says otherwise (a whole 16-bit space).
    public static let defaultSize: UInt32 = 65536

    /// The lowest free range of `size` ids inside `pool`, avoiding `taken`; nil when full.
    public static func allocate(size: UInt32, pool: IDRange, taken: [IDRange]) -> IDRange? {
        guard size > 0, size <= pool.count else { return nil }
        var candidate = UInt64(pool.start)
        for t in taken.sorted(by: { $0.start < $1.start }) where t.end > candidate {
            if UInt64(t.start) >= candidate + UInt64(size) { break }
            candidate = t.end
        }
        guard candidate + UInt64(size) <= pool.end else { return nil }
        return IDRange(start: UInt32(candidate), count: size)
    }

    /// The pool from an /etc/subuid-format text: the first entry of `user` (name or uid).
    public static func pool(subuid text: String, user: String) -> IDRange? {
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 3, f[0] == user, let a = UInt32(f[1]), let n = UInt32(f[2]), n > 0 else { continue }
            return IDRange(start: a, count: n)
        }
        return nil
    }
}
