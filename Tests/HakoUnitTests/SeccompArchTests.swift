#if canImport(Glibc)
import Glibc
#endif
import CSeccomp
@testable import HakoSecurity
import HakoSystem
import Testing

/// The default profile compiled here for the Raspberry Pi's architectures
/// (64-bit aarch64, whose filter also covers 32-bit arm processes, and 32-bit
/// arm itself), run through the BPF interpreter with each architecture's own
/// syscall numbers, as the Pi's kernel would.
@Suite struct SeccompArchTests {
    static let auditAarch64: UInt32 = 0xC000_00B7
    static let auditArm: UInt32 = 0x4000_0028
    static let auditX86_64: UInt32 = 0xC000_003E
    /// SECCOMP_RET_KILL_THREAD (libseccomp's action for a foreign architecture) or KILL_PROCESS.
    static func isKill(_ action: UInt32) -> Bool { action == 0 || action == 0x8000_0000 }
    static let allow: UInt32 = 0x7fff_0000

    func nr(_ name: String, _ arch: String) throws -> Int32 {
        let a = seccomp_arch_resolve_name(arch)
        let n = seccomp_syscall_resolve_name_arch(a, name)
        try #require(n >= 0, "\(name) has no number on \(arch)")
        return n
    }

    func compile(for arch: String) throws -> SeccompMachine {
        let caps = CapabilityPolicy.capabilities(add: [], drop: [], privileged: false)
        return SeccompMachine(try SeccompCompiler.compile(.dockerDefault, capabilities: caps, host: SeccompHost(arch: arch, kernel: (6, 6))))
    }

    @Test func aarch64FilterJudgesAarch64AndArmCalls() throws {
        let m = try compile(for: "arm64")
        let eperm = 0x0005_0000 | UInt32(EPERM)
        // Native aarch64 numbers (openat is 56 there, 257 on x86_64).
        #expect(try nr("openat", "aarch64") == 56)
        for call in ["openat", "read", "getpid", "clone", "mknodat"] {
            #expect(try m.run(nr: nr(call, "aarch64"), arch: Self.auditAarch64, args: [0]) == Self.allow, "\(call)")
        }
        for call in ["mount", "unshare", "keyctl", "kexec_load", "init_module"] {
            #expect(try m.run(nr: nr(call, "aarch64"), arch: Self.auditAarch64) == eperm, "\(call)")
        }
        // 32-bit arm processes under a 64-bit kernel (the profile's sub-architecture).
        #expect(try m.run(nr: nr("getpid", "arm"), arch: Self.auditArm) == Self.allow)
        #expect(try m.run(nr: nr("arm_fadvise64_64", "arm"), arch: Self.auditArm) == Self.allow)
        #expect(try m.run(nr: nr("mount", "arm"), arch: Self.auditArm) == eperm)
        // An x86_64 process is not this filter's: killed, as with any foreign architecture.
        #expect(Self.isKill(try m.run(nr: 39, arch: Self.auditX86_64)))
    }

    @Test func armFilterForRaspberryPiOS32Bit() throws {
        let m = try compile(for: "arm")
        let eperm = 0x0005_0000 | UInt32(EPERM)
        #expect(try m.run(nr: nr("openat", "arm"), arch: Self.auditArm) == Self.allow)
        #expect(try m.run(nr: nr("set_tls", "arm"), arch: Self.auditArm) == Self.allow)
        #expect(try m.run(nr: nr("keyctl", "arm"), arch: Self.auditArm) == eperm)
        #expect(Self.isKill(try m.run(nr: nr("getpid", "aarch64"), arch: Self.auditAarch64)))
    }

    @Test func cacheKeysDifferByArchitecture() {
        let a = SeccompCompiler(cacheDirectory: nil, host: SeccompHost(arch: "arm64", kernel: (6, 6)))
        let b = SeccompCompiler(cacheDirectory: nil, host: SeccompHost(arch: "arm", kernel: (6, 6)))
        #expect(a.cacheKey(.dockerDefault, capabilities: 0) != b.cacheKey(.dockerDefault, capabilities: 0))
        #expect(SeccompHost(arch: "amd64", kernel: (6, 1)).libseccompArch == "x86_64")
        #expect(SeccompHost(arch: "arm64", kernel: (6, 1)).libseccompArch == "aarch64")
    }
}
