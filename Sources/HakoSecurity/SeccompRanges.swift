/// Rewrites a seccomp filter that libseccomp compiled as a tree over syscall
/// numbers into a tree over *ranges* of them.
///
/// libseccomp tests each syscall of a rule by itself: Docker's default profile
/// on x86_64 (the x86_64, i386 and x32 calls) becomes ~1,200 instructions. The
/// kernel converts and JIT-compiles every one of them at each container's
/// start: ~0.5 ms on this machine kind, most of what the default hardening
/// costs a start. Most runs of consecutive numbers share one outcome, so a
/// tree over those runs, its few `ret`s shared, says the same in about a
/// quarter of the instructions (1,227 → 316; installed in ~0.2 ms).
///
/// How: the filter is run symbolically, with the architecture a constant and
/// the syscall number an interval, from the first instruction until every
/// path ends in a `ret` or in an instruction this pass does not reason about
/// (a load of an argument or of the instruction pointer, an ALU operation, a
/// test of the number's bits, …). That yields, per architecture, the number
/// line cut into intervals, each with a fixed action or "continue at
/// instruction p". The new filter dispatches on the architecture, walks a
/// balanced tree over those intervals, and continues every "continue at p" in
/// a verbatim copy of the original instructions reachable from p (argument
/// checks keep libseccomp's code). So for every input the new filter returns
/// what the original returns; a call walks about as many instructions as
/// before (a balanced tree either way).
///
/// Anything outside that shape — a test of the architecture other than
/// equality, a test of the accumulator before any load, a jump out of the
/// program, a path too long to follow — returns the original filter
/// unchanged, as does a result that is not smaller.
enum SeccompRanges {
    struct Instruction: Equatable {
        var op: UInt16
        var jt: UInt8
        var jf: UInt8
        var k: UInt32
    }

    // Classic BPF opcodes this pass reasons about.
    static let loadWord: UInt16 = 0x20   // ld [k]
    static let jumpAlways: UInt16 = 0x05 // ja k
    static let jumpEqual: UInt16 = 0x15  // jeq #k
    static let jumpGreater: UInt16 = 0x25 // jgt #k
    static let jumpGreaterEqual: UInt16 = 0x35 // jge #k
    static let returnConstant: UInt16 = 0x06 // ret #k

    // Offsets in struct seccomp_data.
    static let nrOffset: UInt32 = 0
    static let archOffset: UInt32 = 4

    /// What the accumulator holds where the symbolic run stopped.
    enum Field: Hashable { case none, nr, arch }

    /// How a stretch of syscall numbers ends: an action, or the original
    /// code from an instruction on (with the accumulator holding `field`).
    enum Outcome: Hashable {
        case action(UInt32)
        case code(pc: Int, field: Field)
    }

    struct Interval: Equatable {
        var lo: UInt32
        var hi: UInt32
        var outcome: Outcome
    }

    struct Unsupported: Error {}

    /// The compacted filter, or `bpf` itself when it cannot be compacted.
    static func compact(_ bpf: [UInt8]) -> [UInt8] {
        guard bpf.count % 8 == 0, !bpf.isEmpty else { return bpf }
        let code = decode(bpf)
        guard let out = try? rewrite(code), out.count < code.count else { return bpf }
        return encode(out)
    }

    static func decode(_ bytes: [UInt8]) -> [Instruction] {
        var code: [Instruction] = []
        code.reserveCapacity(bytes.count / 8)
        var i = 0
        while i + 8 <= bytes.count {
            let op = UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
            var k = UInt32(bytes[i + 7]) << 24
            k |= UInt32(bytes[i + 6]) << 16
            k |= UInt32(bytes[i + 5]) << 8
            k |= UInt32(bytes[i + 4])
            code.append(Instruction(op: op, jt: bytes[i + 2], jf: bytes[i + 3], k: k))
            i += 8
        }
        return code
    }

    static func encode(_ code: [Instruction]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(code.count * 8)
        for i in code {
            out.append(UInt8(truncatingIfNeeded: i.op))
            out.append(UInt8(truncatingIfNeeded: i.op >> 8))
            out.append(i.jt)
            out.append(i.jf)
            for shift: UInt32 in [0, 8, 16, 24] { out.append(UInt8(truncatingIfNeeded: i.k >> shift)) }
        }
        return out
    }

    // MARK: the symbolic run

    /// The number line of one architecture (`arch`), cut where the filter's
    /// comparisons cut it. `archConstants` collects every value the
    /// architecture is compared with.
    static func partition(_ code: [Instruction], arch: UInt32, archConstants: inout Set<UInt32>) throws -> [Interval] {
        var out: [Interval] = []
        var budget = 200_000
        // An explicit stack: (pc, accumulator, the number's interval).
        var work: [(pc: Int, field: Field, lo: UInt32, hi: UInt32)] = [(0, .none, 0, .max)]
        while let s = work.popLast() {
            var (pc, field, lo, hi) = s
            walk: while true {
                budget -= 1
                guard budget > 0, pc >= 0, pc < code.count else { throw Unsupported() }
                let i = code[pc]
                func target(_ offset: UInt8) -> Int { pc + 1 + Int(offset) }
                switch i.op {
                case loadWord where i.k == nrOffset: field = .nr; pc += 1
                case loadWord where i.k == archOffset: field = .arch; pc += 1
                case loadWord:
                    // An argument or the instruction pointer: the rest is the original's.
                    out.append(Interval(lo: lo, hi: hi, outcome: .code(pc: pc, field: .none)))
                    break walk
                case returnConstant:
                    out.append(Interval(lo: lo, hi: hi, outcome: .action(i.k)))
                    break walk
                case jumpAlways:
                    guard Int(i.k) < code.count else { throw Unsupported() }
                    pc += 1 + Int(i.k)
                case jumpEqual where field == .arch:
                    archConstants.insert(i.k)
                    pc = target(arch == i.k ? i.jt : i.jf)
                case jumpEqual, jumpGreater, jumpGreaterEqual:
                    // Other tests of the architecture, or of an accumulator never loaded.
                    guard field == .nr else { throw Unsupported() }
                    // The numbers for which the comparison holds, as one interval.
                    let yes: (lo: UInt32, hi: UInt32)?
                    switch i.op {
                    case jumpEqual: yes = i.k >= lo && i.k <= hi ? (i.k, i.k) : nil
                    case jumpGreater: yes = i.k < hi ? (max(lo, i.k + 1), hi) : nil
                    default: yes = i.k <= hi ? (max(lo, i.k), hi) : nil
                    }
                    let t = target(i.jt), f = target(i.jf)
                    guard let yes else { pc = f; continue walk }
                    // The rest of [lo, hi] outside `yes`: below it, above it, or both.
                    if yes.lo > lo { work.append((f, field, lo, yes.lo - 1)) }
                    if yes.hi < hi { work.append((f, field, yes.hi + 1, hi)) }
                    (pc, lo, hi) = (t, yes.lo, yes.hi)
                default:
                    // An instruction this pass does not reason about: the
                    // original continues from here with the accumulator as it is.
                    guard field == .nr || (field == .arch && i.op & 0x07 != 0x05) else { throw Unsupported() }
                    out.append(Interval(lo: lo, hi: hi, outcome: .code(pc: pc, field: field)))
                    break walk
                }
            }
        }
        out.sort { $0.lo < $1.lo }
        // Adjacent intervals with one outcome become one.
        var merged: [Interval] = []
        for iv in out {
            if let last = merged.last, last.outcome == iv.outcome, last.hi &+ 1 == iv.lo {
                merged[merged.count - 1].hi = iv.hi
            } else {
                merged.append(iv)
            }
        }
        // They must cover the number line exactly once.
        var next: UInt64 = 0
        for iv in merged {
            guard UInt64(iv.lo) == next, iv.hi >= iv.lo else { throw Unsupported() }
            next = UInt64(iv.hi) + 1
        }
        guard next == 1 << 32 else { throw Unsupported() }
        return merged
    }

    // MARK: the new filter

    /// A jump whose target is not known until the layout is: a section of an
    /// architecture, or an instruction of the original's tail.
    enum Label: Hashable { case section(Int), original(Int) }

    static func rewrite(_ code: [Instruction]) throws -> [Instruction] {
        // The architectures the filter tells apart, and one it does not know
        // (every such one is treated alike: only equality tests them).
        var constants: Set<UInt32> = []
        var other: UInt32 = 0
        var otherIntervals = try partition(code, arch: other, archConstants: &constants)
        while constants.contains(other) { other &+= 1 }
        var sections: [(arch: UInt32?, intervals: [Interval])] = []
        var done: Set<UInt32> = []
        var pending = constants
        while let a = pending.first {
            pending.remove(a)
            done.insert(a)
            var found: Set<UInt32> = []
            sections.append((a, try partition(code, arch: a, archConstants: &found)))
            pending.formUnion(found.subtracting(done))
        }
        guard !done.contains(other) else { throw Unsupported() }
        // Tested in the original's order (libseccomp puts the native architecture first).
        var rank: [UInt32: Int] = [:]
        for (pc, i) in code.enumerated() where i.op == jumpEqual && done.contains(i.k) && rank[i.k] == nil { rank[i.k] = pc }
        sections.sort { (rank[$0.arch ?? 0] ?? .max, $0.arch ?? 0) < (rank[$1.arch ?? 0] ?? .max, $1.arch ?? 0) }
        // The first walk's, unless 0 turned out to be an architecture the filter names.
        if other != 0 { otherIntervals = try partition(code, arch: other, archConstants: &constants) }
        sections.append((nil, otherIntervals))
        guard constants.isSubset(of: done) else { throw Unsupported() }

        // The original's instructions every "continue at p" can reach, in order.
        var reachable = Set<Int>()
        var stack = sections.flatMap { $0.intervals.compactMap { iv -> Int? in
            if case .code(let pc, _) = iv.outcome { return pc } else { return nil }
        } }
        while let pc = stack.popLast() {
            guard pc >= 0, pc < code.count else { throw Unsupported() }
            guard reachable.insert(pc).inserted else { continue }
            let i = code[pc]
            switch i.op & 0x07 {
            case 0x06: break                                      // ret
            case 0x05 where i.op == jumpAlways: stack.append(pc + 1 + Int(i.k))
            case 0x05: stack += [pc + 1 + Int(i.jt), pc + 1 + Int(i.jf)]
            default: stack.append(pc + 1)
            }
        }
        let tail = reachable.sorted()
        var tailIndex: [Int: Int] = [:]
        for (n, pc) in tail.enumerated() { tailIndex[pc] = n }

        // Emit: the dispatch on the architecture, the sections, the tail.
        var out: [Instruction] = []
        var fixups: [(at: Int, label: Label)] = []
        func jump(to label: Label) {
            fixups.append((out.count, label))
            out.append(Instruction(op: jumpAlways, jt: 0, jf: 0, k: 0))
        }
        out.append(Instruction(op: loadWord, jt: 0, jf: 0, k: archOffset))
        for (n, s) in sections.enumerated() {
            guard let a = s.arch else { continue }
            out.append(Instruction(op: jumpEqual, jt: 0, jf: 1, k: a))
            jump(to: .section(n))
        }
        var sectionStart: [Int: Int] = [:]
        // The unknown architectures' section follows the dispatch directly.
        let order = [sections.count - 1] + Array(0..<(sections.count - 1))
        for n in order {
            sectionStart[n] = out.count
            let intervals = sections[n].intervals
            let tests = intervals.count > 1
            if tests { out.append(Instruction(op: loadWord, jt: 0, jf: 0, k: nrOffset)) }
            if tests, let pooled = pooledTree(intervals) {
                fixups += pooled.fixups.map { (out.count + $0.at, $0.label) }
                out += pooled.code
            } else {
                emitTree(intervals[...], accumulator: tests ? .nr : .arch, into: &out, fixups: &fixups)
            }
        }
        let tailStart = out.count
        for pc in tail {
            var i = code[pc]
            let here = tailIndex[pc] ?? 0
            func moved(_ offset: Int) throws -> Int {
                guard let t = tailIndex[pc + 1 + offset] else { throw Unsupported() }
                return t - here - 1
            }
            if i.op == jumpAlways {
                i.k = UInt32(try moved(Int(i.k)))
            } else if i.op & 0x07 == 0x05 {
                // Only nearer than before: the tail keeps the original's order.
                i.jt = UInt8(try moved(Int(i.jt)))
                i.jf = UInt8(try moved(Int(i.jf)))
            }
            out.append(i)
        }
        for f in fixups {
            let target: Int
            switch f.label {
            case .section(let n): target = sectionStart[n] ?? 0
            case .original(let pc): target = tailStart + (tailIndex[pc] ?? 0)
            }
            guard target > f.at else { throw Unsupported() }
            out[f.at].k = UInt32(target - f.at - 1)
        }
        return out
    }

    /// The same tree with its leaves shared: the tests in preorder, each one's
    /// branches jumping straight to the next test or to one of the section's
    /// few `ret` instructions (placed once, after the tests), or to a jump
    /// into the original's tail. Nil when a branch would jump further than a
    /// test can (255 instructions): `emitTree` then writes every leaf in place.
    static func pooledTree(_ intervals: [Interval]) -> (code: [Instruction], fixups: [(at: Int, label: Label)])? {
        // The tests, in preorder: the boundary and where each branch goes.
        enum Target { case test(Int), leaf(Outcome) }
        var tests: [(k: UInt32, above: Target, below: Target)] = []
        func build(_ r: ArraySlice<Interval>) -> Target {
            if r.count == 1, let only = r.first { return .leaf(only.outcome) }
            let mid = r.startIndex + (r.count - 1) / 2
            let n = tests.count
            tests.append((r[mid].hi, .leaf(.action(0)), .leaf(.action(0))))
            let below = build(r[...mid])
            let above = build(r[(mid + 1)...])
            tests[n] = (r[mid].hi, above, below)
            return .test(n)
        }
        _ = build(intervals[...])
        // After the tests: one `ret` per action, then one jump per place in the original.
        var slot: [Outcome: Int] = [:]
        var leaves: [Outcome] = []
        for t in tests {
            for target in [t.below, t.above] {
                if case .leaf(let o) = target, slot[o] == nil { slot[o] = tests.count + leaves.count; leaves.append(o) }
            }
        }
        var code: [Instruction] = []
        for (n, t) in tests.enumerated() {
            func offset(_ target: Target) -> Int {
                switch target {
                case .test(let m): return m - n - 1
                case .leaf(let o): return (slot[o] ?? 0) - n - 1
                }
            }
            let (jt, jf) = (offset(t.above), offset(t.below))
            guard jt >= 0, jf >= 0, jt <= 255, jf <= 255 else { return nil }
            code.append(Instruction(op: jumpGreater, jt: UInt8(jt), jf: UInt8(jf), k: t.k))
        }
        var fixups: [(at: Int, label: Label)] = []
        for o in leaves {
            switch o {
            case .action(let k):
                code.append(Instruction(op: returnConstant, jt: 0, jf: 0, k: k))
            case .code(let pc, let field):
                // Every test leaves the number in the accumulator.
                guard field != .arch else { return nil }
                fixups.append((code.count, .original(pc)))
                code.append(Instruction(op: jumpAlways, jt: 0, jf: 0, k: 0))
            }
        }
        return (code, fixups)
    }

    /// A balanced tree over `intervals` (contiguous, in order), the accumulator
    /// holding the syscall number (or, with one interval, the architecture).
    static func emitTree(_ intervals: ArraySlice<Interval>, accumulator: Field,
                         into out: inout [Instruction], fixups: inout [(at: Int, label: Label)]) {
        if intervals.count == 1, let only = intervals.first {
            switch only.outcome {
            case .action(let k):
                out.append(Instruction(op: returnConstant, jt: 0, jf: 0, k: k))
            case .code(let pc, let field):
                if field != .none && field != accumulator {
                    out.append(Instruction(op: loadWord, jt: 0, jf: 0, k: field == .nr ? nrOffset : archOffset))
                }
                fixups.append((out.count, .original(pc)))
                out.append(Instruction(op: jumpAlways, jt: 0, jf: 0, k: 0))
            }
            return
        }
        let mid = intervals.startIndex + (intervals.count - 1) / 2
        // Numbers above the middle interval's go right; the rest, below.
        var left: [Instruction] = [], leftFixups: [(at: Int, label: Label)] = []
        emitTree(intervals[...mid], accumulator: accumulator, into: &left, fixups: &leftFixups)
        let test = intervals[mid].hi
        if left.count <= 255 {
            out.append(Instruction(op: jumpGreater, jt: UInt8(left.count), jf: 0, k: test))
        } else {
            out.append(Instruction(op: jumpGreater, jt: 0, jf: 1, k: test))
            out.append(Instruction(op: jumpAlways, jt: 0, jf: 0, k: UInt32(left.count)))
        }
        let base = out.count
        out += left
        fixups += leftFixups.map { (base + $0.at, $0.label) }
        emitTree(intervals[(mid + 1)...], accumulator: accumulator, into: &out, fixups: &fixups)
    }
}
