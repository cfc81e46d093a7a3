#if canImport(Glibc)
import Glibc
#endif
import CSeccomp
@testable import HakoSecurity
import Testing

/// The filter rewritten over ranges of syscall numbers (SeccompRanges) decides
/// every call as libseccomp's own filter does, in fewer instructions.
@Suite struct SeccompRangesTests {
    static let x86_64: UInt32 = 0xC000_003E, i386: UInt32 = 0x4000_0003
    static let aarch64: UInt32 = 0xC000_00B7, arm: UInt32 = 0x4000_0028
    /// An architecture no profile here names (AUDIT_ARCH_PPC64LE).
    static let foreign: UInt32 = 0xC000_0015

    static let argumentSets: [[UInt64]] = [
        [], [UInt64(SIGCHLD)], [0x1000_0000 | UInt64(SIGCHLD)], [0x4000_0000], [2, 1, 0], [40, 1, 0],
        [0x0040_0000], [0xffff_ffff], [1, 9], [1, 15], [UInt64.max, UInt64.max, UInt64.max], [0x1_0000_0000, 7, 1 << 40],
    ]

    /// The numbers worth asking about: every number a syscall table uses
    /// (x86_64, i386, the arm ones, x32's), the filters' own constants and
    /// their neighbours, and the ends of the line.
    static func numbers(_ filters: [[UInt8]]) -> [UInt32] {
        var n = Set<UInt32>(0..<1100)
        n.formUnion(0x4000_0000..<0x4000_0000 + 1100)
        n.formUnion(0x000f_0000..<0x000f_0010)
        n.formUnion([0x7fff_ffff, 0x8000_0000, 0xffff_fffe, .max])
        for f in filters {
            for i in SeccompRanges.decode(f) where i.op & 0x07 == 0x05 && i.op != 0x05 {
                n.formUnion([i.k &- 1, i.k, i.k &+ 1])
            }
        }
        return n.sorted()
    }

    func expectSameDecisions(_ profile: SeccompProfile, capabilities: UInt64, host: SeccompHost, arches: [UInt32],
                             sourceLocation: SourceLocation = #_sourceLocation) throws -> (before: Int, after: Int) {
        let original = try SeccompCompiler.libseccompFilter(profile, capabilities: capabilities, host: host)
        let compact = try SeccompCompiler.compile(profile, capabilities: capabilities, host: host)
        let a = SeccompMachine(original), b = SeccompMachine(compact)
        var differences = 0
        for arch in arches + [Self.foreign] {
            for nr in Self.numbers([original, compact]) {
                // Arguments matter only where the original looks at them; one
                // set everywhere, all of them on the numbers below 1100.
                let sets = nr < 1100 || (nr >= 0x4000_0000 && nr < 0x4000_0000 + 1100) ? Self.argumentSets : [[]]
                for args in sets {
                    let x = try a.run(nr: Int32(bitPattern: nr), arch: arch, args: args)
                    let y = try b.run(nr: Int32(bitPattern: nr), arch: arch, args: args)
                    if x != y {
                        differences += 1
                        if differences <= 5 {
                            Issue.record("arch \(String(arch, radix: 16)) nr \(nr) args \(args): \(String(x, radix: 16)) became \(String(y, radix: 16))", sourceLocation: sourceLocation)
                        }
                    }
                }
            }
        }
        #expect(differences == 0, sourceLocation: sourceLocation)
        return (original.count / 8, compact.count / 8)
    }

    static let defaults = CapabilityPolicy.capabilities(add: [], drop: [], privileged: false)

    @Test func dockersDefaultOnX86_64() throws {
        let host = SeccompHost(arch: "amd64", kernel: (6, 1))
        let (before, after) = try expectSameDecisions(.dockerDefault, capabilities: Self.defaults, host: host, arches: [Self.x86_64, Self.i386])
        // Docker's profile covers x86_64, i386 and x32: ~1,400 instructions from libseccomp.
        #expect(after * 2 < before, "\(before) instructions became \(after)")
        // With CAP_SYS_ADMIN (other rules, other argument checks) and with every capability.
        _ = try expectSameDecisions(.dockerDefault, capabilities: Self.defaults | 1 << 21, host: host, arches: [Self.x86_64, Self.i386])
        _ = try expectSameDecisions(.dockerDefault, capabilities: (1 << 41) - 1, host: host, arches: [Self.x86_64, Self.i386])
    }

    @Test func dockersDefaultOnTheRaspberryPis() throws {
        for arch in ["arm64", "arm"] {
            let host = SeccompHost(arch: arch, kernel: (6, 6))
            let (before, after) = try expectSameDecisions(.dockerDefault, capabilities: Self.defaults, host: host, arches: [Self.aarch64, Self.arm])
            #expect(after < before, "\(arch): \(before) instructions became \(after)")
        }
    }

    @Test func profilesWithArgumentsAndOtherDefaults() throws {
        let host = SeccompHost(arch: "amd64", kernel: (6, 1))
        let rules: [SeccompProfile.Rule] = [
            .init(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet: 13),
            .init(["kill"], "SCMP_ACT_ERRNO", args: [.init(1, 9, "SCMP_CMP_EQ")]),
            .init(["clone"], "SCMP_ACT_ERRNO", args: [.init(0, 0x1000_0000, "SCMP_CMP_MASKED_EQ", valueTwo: 0x1000_0000)]),
            .init(["socket"], "SCMP_ACT_KILL_PROCESS", args: [.init(0, 16, "SCMP_CMP_GT")]),
            .init(["mmap"], "SCMP_ACT_TRAP", args: [.init(2, 0x1_0000_0000, "SCMP_CMP_GE")]),
            .init(["personality"], "SCMP_ACT_LOG", args: [.init(0, 8, "SCMP_CMP_NE")]),
            .init(["read", "write", "getpid"]),
        ]
        for defaultAction in ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"] {
            let p = SeccompProfile(defaultAction: defaultAction, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], syscalls: rules)
            _ = try expectSameDecisions(p, capabilities: 0, host: host, arches: [Self.x86_64, Self.i386])
        }
        // No rule at all: one instruction per architecture, nothing to gain; kept as libseccomp wrote it.
        let empty = SeccompProfile(defaultAction: "SCMP_ACT_ERRNO", syscalls: [])
        let (before, after) = try expectSameDecisions(empty, capabilities: 0, host: host, arches: [Self.x86_64])
        #expect(after <= before)
    }

    /// Every other x86_64 syscall allowed: ~450 intervals, too many for one
    /// test's 8-bit jumps to reach a shared `ret`; the tree then writes its
    /// leaves in place and jumps over long branches.
    @Test func manyRanges() throws {
        let host = SeccompHost(arch: "amd64", kernel: (6, 1))
        let names = stride(from: Int32(0), to: 460, by: 2).compactMap { nr -> String? in
            guard let p = seccomp_syscall_resolve_num_arch(UInt32(0xC000_003E), nr) else { return nil }
            defer { free(p) }
            return String(cString: p)
        }
        #expect(names.count > 150)
        let p = SeccompProfile(defaultAction: "SCMP_ACT_ERRNO", architectures: ["SCMP_ARCH_X86_64"], syscalls: [.init(names)])
        let (before, after) = try expectSameDecisions(p, capabilities: 0, host: host, arches: [Self.x86_64])
        #expect(after <= before)
        // The path taken: no shared leaves.
        var constants: Set<UInt32> = []
        let original = SeccompRanges.decode(try SeccompCompiler.libseccompFilter(p, capabilities: 0, host: host))
        let intervals = try SeccompRanges.partition(original, arch: Self.x86_64, archConstants: &constants)
        #expect(intervals.count > 300 && SeccompRanges.pooledTree(intervals) == nil)
    }

    @Test func whatItCannotReasonAboutIsKept() {
        typealias I = SeccompRanges.Instruction
        // A test of the architecture other than equality: the filter comes back unchanged.
        let odd = SeccompRanges.encode([
            I(op: 0x20, jt: 0, jf: 0, k: 4), I(op: 0x25, jt: 0, jf: 1, k: 0x4000_0000),
            I(op: 0x06, jt: 0, jf: 0, k: 0x7fff_0000), I(op: 0x06, jt: 0, jf: 0, k: 0),
        ])
        #expect(SeccompRanges.compact(odd) == odd)
        // A jump out of the program.
        let broken = SeccompRanges.encode([I(op: 0x05, jt: 0, jf: 0, k: 9), I(op: 0x06, jt: 0, jf: 0, k: 0)])
        #expect(SeccompRanges.compact(broken) == broken)
        #expect(SeccompRanges.compact([1, 2, 3]) == [1, 2, 3])
    }
}
