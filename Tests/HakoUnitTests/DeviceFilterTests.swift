@testable import HakoRuntime
import HakoSystem
import Testing

/// A small eBPF interpreter for the instructions a device filter may use: it
/// runs the generated program over `struct bpf_cgroup_dev_ctx` as the kernel
/// would, so the program is checked without root. Anything else it meets fails.
struct EBPFMachine {
    enum Fault: Error, Equatable { case badOpcode(UInt8), badLoad(Int16), noExit, badJump }

    static func run(_ program: [BPFInstruction], type: UInt32, access: UInt32, major: UInt32, minor: UInt32) throws -> UInt64 {
        let ctx: [UInt32] = [(access << 16) | type, major, minor]
        var r = [UInt64](repeating: 0, count: 11)
        var pc = 0
        var steps = 0
        while pc < program.count {
            steps += 1
            if steps > 10_000 { throw Fault.noExit }
            let i = program[pc]
            let dst = Int(i.dst), src = Int(i.src)
            let imm64 = UInt64(bitPattern: Int64(i.imm))
            pc += 1
            func jump(_ cond: Bool) throws {
                if cond { pc += Int(i.off) }
                if pc < 0 || pc > program.count { throw Fault.badJump }
            }
            switch i.code {
            case BPFInstruction.ldxW:
                guard src == 1, i.off >= 0, i.off % 4 == 0, Int(i.off) / 4 < ctx.count else { throw Fault.badLoad(i.off) }
                r[dst] = UInt64(ctx[Int(i.off) / 4])
            case BPFInstruction.and32K: r[dst] = UInt64(UInt32(truncatingIfNeeded: r[dst]) & UInt32(bitPattern: i.imm))
            case BPFInstruction.rsh32K: r[dst] = UInt64(UInt32(truncatingIfNeeded: r[dst]) >> UInt32(i.imm & 31))
            case BPFInstruction.mov32X: r[dst] = UInt64(UInt32(truncatingIfNeeded: r[src]))
            case BPFInstruction.mov64K: r[dst] = imm64
            case BPFInstruction.jneK: try jump(r[dst] != imm64)
            case BPFInstruction.jneX: try jump(r[dst] != r[src])
            case BPFInstruction.exit: return r[0]
            default: throw Fault.badOpcode(i.code)
            }
        }
        throw Fault.noExit
    }
}

@Suite struct DeviceFilterTests {
    let kinds: [(DeviceRule.Kind, UInt32)] = [(.char, 2), (.block, 1)]
    let accesses: [DeviceAccess] = [.mknod, .read, .write, [.read, .write], .all, [.mknod, .read]]

    /// The program's verdict equals the rules' over a grid of requests.
    func checkGrid(_ rules: [DeviceRule], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let program = DeviceFilterProgram.generate(rules)
        for (kind, type) in kinds {
            for major: UInt32 in [0, 1, 5, 7, 8, 10, 136, 189, 4095] {
                for minor: UInt32 in [0, 1, 2, 3, 5, 7, 9, 200, 237] {
                    for a in accesses {
                        let want = DeviceRules.evaluate(rules, kind: kind, major: major, minor: minor, access: a)
                        let got = try EBPFMachine.run(program, type: type, access: UInt32(a.rawValue), major: major, minor: minor)
                        #expect(got == (want ? 1 : 0), "\(kind) \(major):\(minor) \(a.letters) with \(rules)", sourceLocation: sourceLocation)
                    }
                }
            }
        }
    }

    @Test func dockerDefaultAllowsOnlyItsList() throws {
        try checkGrid(DeviceRules.dockerDefault)
        let rules = DeviceRules.dockerDefault
        #expect(DeviceRules.evaluate(rules, kind: .char, major: 1, minor: 3, access: .all))       // null
        #expect(DeviceRules.evaluate(rules, kind: .char, major: 136, minor: 7, access: .read))    // a pty
        #expect(!DeviceRules.evaluate(rules, kind: .char, major: 1, minor: 1, access: .read))     // /dev/mem
        #expect(!DeviceRules.evaluate(rules, kind: .block, major: 8, minor: 0, access: .mknod))   // sda
        #expect(!DeviceRules.evaluate(rules, kind: .block, major: 1, minor: 3, access: .read))    // not char
    }

    @Test func partialAccessWildcardsAndOrder() throws {
        let mknodOnly = DeviceRules.dockerDefault + [try DeviceRule(parsing: "c *:* m"), try DeviceRule(parsing: "b 8:* rm")]
        try checkGrid(mknodOnly)
        // A later deny overrides an earlier allow, and the reverse.
        try checkGrid([.allowAll, DeviceRule(.char, 1, nil, .all, allow: false), DeviceRule(.char, 1, 3, .read)])
        try checkGrid([.denyAll, DeviceRule(.all, nil, nil, [.read]), DeviceRule(.block, nil, 0, .write, allow: false)])
        try checkGrid([.allowAll])
        try checkGrid([])
    }

    @Test func goldenProgram() {
        // One rule, "c 1:3 rw": the fixed prologue, the rule's tests, the verdicts.
        let p = DeviceFilterProgram.bytes(DeviceFilterProgram.generate([DeviceRule(.char, 1, 3, [.read, .write])]))
        let expected: [[UInt8]] = [
            [0x61, 0x12, 0, 0, 0, 0, 0, 0],                // r2 = *(u32 *)(r1 + 0)
            [0x54, 0x02, 0, 0, 0xff, 0xff, 0, 0],          // w2 &= 0xffff
            [0x61, 0x13, 0, 0, 0, 0, 0, 0],                // r3 = *(u32 *)(r1 + 0)
            [0x74, 0x03, 0, 0, 16, 0, 0, 0],               // w3 >>= 16
            [0x61, 0x14, 4, 0, 0, 0, 0, 0],                // r4 = major
            [0x61, 0x15, 8, 0, 0, 0, 0, 0],                // r5 = minor
            [0x55, 0x02, 7, 0, 2, 0, 0, 0],                // if r2 != 2 (char) goto next
            [0xbc, 0x31, 0, 0, 0, 0, 0, 0],                // w1 = w3
            [0x54, 0x01, 0, 0, 6, 0, 0, 0],                // w1 &= rw
            [0x5d, 0x31, 4, 0, 0, 0, 0, 0],                // if r1 != r3 goto next
            [0x55, 0x04, 3, 0, 1, 0, 0, 0],                // if major != 1 goto next
            [0x55, 0x05, 2, 0, 3, 0, 0, 0],                // if minor != 3 goto next
            [0xb7, 0x00, 0, 0, 1, 0, 0, 0],                // r0 = 1
            [0x95, 0, 0, 0, 0, 0, 0, 0],                   // exit
            [0xb7, 0x00, 0, 0, 0, 0, 0, 0],                // next: r0 = 0
            [0x95, 0, 0, 0, 0, 0, 0, 0],                   // exit
        ]
        #expect(p == expected.flatMap { $0 })
    }

    @Test func parsesRules() throws {
        #expect(try DeviceRule(parsing: "c 1:3 rwm") == DeviceRule(.char, 1, 3, .all))
        #expect(try DeviceRule(parsing: "b *:* m") == DeviceRule(.block, nil, nil, .mknod))
        #expect(try DeviceRule(parsing: "a") == .allowAll)
        #expect(try DeviceRule(parsing: "c 189:* rw").description == "c 189:* rw")
        for bad in ["", "x 1:3 rwm", "c 1 rwm", "c 1:3", "c 1:3 rwx", "c 1:3 rr", "c a:3 r", "a 1:1 r", "c 99999999:1 r"] {
            #expect(throws: HakoError.self, "\(bad)") { try DeviceRule(parsing: bad) }
        }
    }
}
