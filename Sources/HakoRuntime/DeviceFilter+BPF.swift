#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoSystem

/// One eBPF instruction: 8 bytes, little-endian on the hosts hako runs on.
public struct BPFInstruction: Sendable, Equatable {
    public var code: UInt8
    public var dst: UInt8
    public var src: UInt8
    public var off: Int16
    public var imm: Int32

    public init(_ code: UInt8, dst: UInt8 = 0, src: UInt8 = 0, off: Int16 = 0, imm: Int32 = 0) {
        self.code = code; self.dst = dst; self.src = src; self.off = off; self.imm = imm
    }

    public var bytes: [UInt8] {
        let o = UInt16(bitPattern: off), i = UInt32(bitPattern: imm)
        return [code, (src << 4) | (dst & 0x0f), UInt8(o & 0xff), UInt8(o >> 8),
                UInt8(i & 0xff), UInt8((i >> 8) & 0xff), UInt8((i >> 16) & 0xff), UInt8(i >> 24)]
    }

    // Opcodes used by the device filter (class | operation | source).
    public static let ldxW: UInt8 = 0x61      // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
    public static let and32K: UInt8 = 0x54    // BPF_ALU | BPF_AND | BPF_K
    public static let rsh32K: UInt8 = 0x74    // BPF_ALU | BPF_RSH | BPF_K
    public static let mov32X: UInt8 = 0xbc    // BPF_ALU | BPF_MOV | BPF_X
    public static let mov64K: UInt8 = 0xb7    // BPF_ALU64 | BPF_MOV | BPF_K
    public static let jneK: UInt8 = 0x55      // BPF_JMP | BPF_JNE | BPF_K
    public static let jneX: UInt8 = 0x5d      // BPF_JMP | BPF_JNE | BPF_X
    public static let exit: UInt8 = 0x95      // BPF_JMP | BPF_EXIT
}

/// Generates the cgroup v2 device filter: an eBPF program of type
/// BPF_PROG_TYPE_CGROUP_DEVICE, from device rules, without clang or libbpf.
///
/// The kernel calls it with `struct bpf_cgroup_dev_ctx { u32 access_type; u32
/// major; u32 minor; }` in r1, access_type = (access << 16) | type (type 1 block,
/// 2 char; access 1 mknod, 2 read, 4 write). It returns 1 to allow, 0 to deny.
/// The rules are checked last to first, so the last matching rule decides;
/// nothing matching denies.
public enum DeviceFilterProgram {
    public static func generate(_ rules: [DeviceRule]) -> [BPFInstruction] {
        typealias I = BPFInstruction
        var p: [I] = [
            I(I.ldxW, dst: 2, src: 1, off: 0),      // r2 = access_type
            I(I.and32K, dst: 2, imm: 0xffff),      // w2 &= 0xffff: the device type
            I(I.ldxW, dst: 3, src: 1, off: 0),      // r3 = access_type
            I(I.rsh32K, dst: 3, imm: 16),          // w3 >>= 16: the access requested
            I(I.ldxW, dst: 4, src: 1, off: 4),      // r4 = major
            I(I.ldxW, dst: 5, src: 1, off: 8),      // r5 = minor
        ]
        for rule in rules.reversed() {
            // The block's tests, each jumping past the block (to the next rule) on mismatch.
            var tests: [I] = []
            switch rule.kind {
            case .all: break
            case .block: tests.append(I(I.jneK, dst: 2, imm: 1))
            case .char: tests.append(I(I.jneK, dst: 2, imm: 2))
            }
            if rule.access != .all {
                // The request must be a subset of the rule's access: (r3 & access) == r3.
                tests.append(I(I.mov32X, dst: 1, src: 3))
                tests.append(I(I.and32K, dst: 1, imm: Int32(rule.access.rawValue)))
                tests.append(I(I.jneX, dst: 1, src: 3))
            }
            if let m = rule.major { tests.append(I(I.jneK, dst: 4, imm: Int32(bitPattern: m))) }
            if let m = rule.minor { tests.append(I(I.jneK, dst: 5, imm: Int32(bitPattern: m))) }
            let verdict = [I(I.mov64K, dst: 0, imm: rule.allow ? 1 : 0), I(I.exit)]
            // A jump's offset counts from the instruction after it.
            for (i, t) in tests.enumerated() {
                var fixed = t
                if t.code == I.jneK || t.code == I.jneX { fixed.off = Int16(tests.count - i - 1 + verdict.count) }
                p.append(fixed)
            }
            p += verdict
            if tests.isEmpty { return p }  // matches everything: earlier rules can never decide
        }
        return p + [I(I.mov64K, dst: 0, imm: 0), I(I.exit)]
    }

    public static func bytes(_ program: [BPFInstruction]) -> [UInt8] { program.flatMap(\.bytes) }
}

/// Loads and attaches a device filter to a cgroup v2 directory: the kernel side,
/// behind a protocol so the drivers can be tested without root.
public protocol DeviceFilterLoader: Sendable {
    func attach(_ program: [BPFInstruction], toCgroup dir: String) throws
}

/// bpf(2): BPF_PROG_LOAD, then BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, ALLOW_MULTI).
/// The cgroup keeps the program once attached; the fds are closed.
public struct KernelDeviceFilterLoader: DeviceFilterLoader {
    public init() {}

    public func attach(_ program: [BPFInstruction], toCgroup dir: String) throws {
        let code = DeviceFilterProgram.bytes(program)
        var log = [CChar](repeating: 0, count: 4096)
        let prog = code.withUnsafeBytes { raw in
            hako_bpf_load_device_program(raw.baseAddress, UInt32(program.count), &log, UInt32(log.count))
        }
        if prog < 0 {
            let e = errno
            let verifier = cString(log).trimmed
            throw HakoError(.kernel(operation: "bpf BPF_PROG_LOAD", errno: e), "cannot load the device filter (bpf BPF_PROG_LOAD)"
                            + (verifier.isEmpty ? "" : ": \(verifier.split(separator: "\n").last ?? "")"),
                            cause: SystemError("bpf", errno: e))
        }
        defer { Glibc.close(prog) }
        let cg = try FileDescriptor.open(dir, O_RDONLY | O_DIRECTORY)
        try sys("attach device filter (bpf BPF_PROG_ATTACH)", dir) { hako_bpf_attach_device_program(prog, cg.rawValue) }
    }
}
