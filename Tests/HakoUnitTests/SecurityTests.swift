import CSeccomp
import Foundation
@testable import HakoSecurity
import HakoSystem
import Testing

/// A classic-BPF interpreter for seccomp filters: runs a compiled filter over a
/// `struct seccomp_data` and returns the action, as the kernel would.
struct SeccompMachine {
    enum Fault: Error { case badOpcode(UInt16), badLoad(UInt32), noReturn }

    let code: [SeccompRanges.Instruction]

    init(_ bytes: [UInt8]) { code = SeccompRanges.decode(bytes) }

    func run(nr: Int32, arch: UInt32, args: [UInt64] = []) throws -> UInt32 { try trace(nr: nr, arch: arch, args: args).action }

    /// The action and how many instructions the filter executed to reach it.
    func trace(nr: Int32, arch: UInt32, args: [UInt64] = []) throws -> (action: UInt32, steps: Int) {
        var data = [UInt32](repeating: 0, count: 16)
        data[0] = UInt32(bitPattern: nr)
        data[1] = arch
        for (i, a) in args.prefix(6).enumerated() {
            data[4 + 2 * i] = UInt32(truncatingIfNeeded: a)
            data[5 + 2 * i] = UInt32(truncatingIfNeeded: a >> 32)
        }
        var A: UInt32 = 0, X: UInt32 = 0
        var mem = [UInt32](repeating: 0, count: 16)
        var pc = 0
        var steps = 0
        while pc < code.count {
            let i = code[pc]
            pc += 1
            steps += 1
            switch i.op {
            case 0x20:  // ld [k]
                guard i.k % 4 == 0, Int(i.k / 4) < data.count else { throw Fault.badLoad(i.k) }
                A = data[Int(i.k / 4)]
            case 0x00: A = i.k                    // ld #k
            case 0x01: X = i.k                    // ldx #k
            case 0x60: A = mem[Int(i.k & 15)]     // ld M[k]
            case 0x61: X = mem[Int(i.k & 15)]     // ldx M[k]
            case 0x02: mem[Int(i.k & 15)] = A     // st M[k]
            case 0x03: mem[Int(i.k & 15)] = X     // stx M[k]
            case 0x54: A &= i.k                   // and #k
            case 0x5c: A &= X
            case 0x44: A |= i.k
            case 0x04: A = A &+ i.k
            case 0x14: A = A &- i.k
            case 0x74: A >>= i.k & 31
            case 0x64: A <<= i.k & 31
            case 0x07: X = A                      // tax
            case 0x87: A = X                      // txa
            case 0x05: pc += Int(i.k)             // ja
            case 0x15: pc += A == i.k ? Int(i.jt) : Int(i.jf)
            case 0x25: pc += A > i.k ? Int(i.jt) : Int(i.jf)
            case 0x35: pc += A >= i.k ? Int(i.jt) : Int(i.jf)
            case 0x45: pc += A & i.k != 0 ? Int(i.jt) : Int(i.jf)
            case 0x1d: pc += A == X ? Int(i.jt) : Int(i.jf)
            case 0x2d: pc += A > X ? Int(i.jt) : Int(i.jf)
            case 0x3d: pc += A >= X ? Int(i.jt) : Int(i.jf)
            case 0x06: return (i.k, steps)        // ret #k
            case 0x16: return (A, steps)          // ret a
            default: throw Fault.badOpcode(i.op)
            }
        }
        throw Fault.noReturn
    }
}

let allow: UInt32 = 0x7fff_0000
func errnoAction(_ e: Int32) -> UInt32 { 0x0005_0000 | UInt32(e) }

func nativeNR(_ name: String) -> Int32 { seccomp_syscall_resolve_name(name) }

@Suite struct SecurityTests {
    let native = seccomp_arch_native()

    @Test func capabilityNames() throws {
        #expect(CapabilityNames.number("NET_ADMIN") == 12)
        #expect(CapabilityNames.number("cap_net_admin") == 12)
        #expect(CapabilityNames.number("CAP_SYS_ADMIN") == 21)
        #expect(CapabilityNames.number("bogus") == nil && CapabilityNames.number("12") == nil && CapabilityNames.number("") == nil)
        #expect(CapabilityNames.number("Cap_Kill") == 5 && CapabilityNames.number("kill") == 5)
        #expect(CapabilityNames.number("CAP_") == nil && CapabilityNames.number("net-admin") == nil && CapabilityNames.number("NET_ADMİN") == nil)
        #expect(CapabilityNames.name(0) == "CAP_CHOWN")
        #expect(CapabilityNames.count >= 38)
        #expect(try CapabilityPolicy.normalize(["net_admin", "CAP_SYS_TIME,all", "NET_ADMIN"], flag: "--cap-add")
                == ["ALL", "CAP_NET_ADMIN", "CAP_SYS_TIME"])
        #expect(throws: HakoError.self) { try CapabilityPolicy.normalize(["CAP_FLY"], flag: "--cap-add") }
    }

    @Test func dockerCapabilityRules() {
        let d = CapabilityPolicy.capabilities(add: [], drop: [], privileged: false)
        #expect(d == 0xa804_25fb, "Docker's default set of 14")
        #expect(d.nonzeroBitCount == 14)
        let netAdmin = UInt64(1) << 12, chown = UInt64(1)
        #expect(CapabilityPolicy.capabilities(add: ["CAP_NET_ADMIN"], drop: ["CAP_CHOWN"], privileged: false) == (d | netAdmin) & ~chown)
        #expect(CapabilityPolicy.capabilities(add: ["CAP_NET_ADMIN"], drop: ["ALL"], privileged: false) == netAdmin)
        #expect(CapabilityPolicy.capabilities(add: ["ALL"], drop: ["CAP_CHOWN"], privileged: false) == CapabilityNames.all & ~chown)
        #expect(CapabilityPolicy.capabilities(add: [], drop: ["ALL"], privileged: false) == 0)
        #expect(CapabilityPolicy.capabilities(add: [], drop: ["ALL"], privileged: true) == CapabilityNames.all)
        // Root: bounding = permitted = effective; others: only what was added, also in the ambient set.
        let root = CapabilityPolicy.sets(d, explicitlyAdded: 0, rootUser: true)
        #expect(root == CapabilitySets(bounding: d, effective: d, permitted: d, inheritable: 0, ambient: 0))
        let user = CapabilityPolicy.sets(d | netAdmin, explicitlyAdded: netAdmin, rootUser: false)
        #expect(user == CapabilitySets(bounding: d | netAdmin, effective: netAdmin, permitted: netAdmin, inheritable: netAdmin, ambient: netAdmin))
    }

    @Test func defaultProfileBehavesLikeDockers() throws {
        let host = SeccompHost.current
        let defaults = CapabilityPolicy.capabilities(add: [], drop: [], privileged: false)
        let m = SeccompMachine(try SeccompCompiler.compile(.dockerDefault, capabilities: defaults, host: host))
        func run(_ name: String, _ args: [UInt64] = []) throws -> UInt32 { try m.run(nr: nativeNR(name), arch: native, args: args) }
        let eperm = errnoAction(EPERM)
        #expect(try run("getpid") == allow)
        #expect(try run("read") == allow)
        #expect(try run("mknodat") == allow, "devices are the device filter's business")
        for blocked in ["keyctl", "add_key", "request_key", "unshare", "mount", "umount2", "setns", "reboot", "init_module", "bpf", "kexec_load"] {
            #expect(try run(blocked) == eperm, "\(blocked)")
        }
        #expect(try run("clone", [UInt64(SIGCHLD)]) == allow)
        #expect(try run("clone", [0x1000_0000 | UInt64(SIGCHLD)]) == eperm, "CLONE_NEWUSER")
        #expect(try run("clone", [0x4000_0000]) == eperm, "CLONE_NEWNET")
        #expect(try run("clone3") == errnoAction(ENOSYS), "libc falls back to clone")
        #expect(try run("socket", [2, 1, 0]) == allow, "AF_INET")
        #expect(try run("socket", [40, 1, 0]) == eperm, "AF_VSOCK")
        #expect(try run("personality", [0]) == allow && (try run("personality", [0xffff_ffff])) == allow)
        #expect(try run("personality", [0x0040_0000]) == eperm, "READ_IMPLIES_EXEC")
        // Another architecture than the filter's: killed.
        #expect(try m.run(nr: 0, arch: 0x8000_0015) & 0xffff_0000 != allow)
        if host.arch == "amd64" {
            let getpid32 = seccomp_syscall_resolve_name_arch(UInt32(0x4000_0003), "getpid")
            #expect(try m.run(nr: getpid32, arch: 0x4000_0003) == allow, "i386 programs run on x86_64")
        }

        // Cheap per call: the filter is a binary tree over syscall numbers.
        var worst = 0
        for nr in Int32(0)..<460 { worst = max(worst, try m.trace(nr: nr, arch: native, args: [0, 0, 0]).steps) }
        #expect(worst <= 40, "instructions per call at most: \(worst)")

        // CAP_SYS_ADMIN unlocks namespaces and mounts, as in Docker.
        let admin = SeccompMachine(try SeccompCompiler.compile(.dockerDefault, capabilities: defaults | (1 << 21), host: host))
        #expect(try admin.run(nr: nativeNR("unshare"), arch: native) == allow)
        #expect(try admin.run(nr: nativeNR("clone"), arch: native, args: [0x1000_0000]) == allow)
        #expect(try admin.run(nr: nativeNR("clone3"), arch: native) == allow)
        #expect(try admin.run(nr: nativeNR("keyctl"), arch: native) == eperm)
    }

    @Test func dockerJSONProfiles() throws {
        let json = """
        {"defaultAction": "SCMP_ACT_ALLOW",
         "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
         "syscalls": [
           {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
           {"name": "chmod", "action": "SCMP_ACT_ERRNO"},
           {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}
         ]}
        """
        let p = try JSONDecoder().decode(SeccompProfile.self, from: Data(json.utf8))
        let m = SeccompMachine(try SeccompCompiler.compile(p, capabilities: 0, host: .current))
        #expect(try m.run(nr: nativeNR("mkdirat"), arch: native) == errnoAction(EACCES))
        #expect(try m.run(nr: nativeNR("read"), arch: native) == allow)
        #expect(try m.run(nr: nativeNR("kill"), arch: native, args: [1, 9]) == errnoAction(EPERM))
        #expect(try m.run(nr: nativeNR("kill"), arch: native, args: [1, 15]) == allow)
        var bad = p
        bad.defaultAction = "SCMP_ACT_EXPLODE"
        #expect(throws: HakoError.self) { try SeccompCompiler.compile(bad, capabilities: 0, host: .current) }
        bad = p
        bad.syscalls = [.init(["read"], "SCMP_ACT_ERRNO", args: [.init(7, 1, "SCMP_CMP_EQ")])]
        #expect(throws: HakoError.self) { try SeccompCompiler.compile(bad, capabilities: 0, host: .current) }
    }

    /// The default profile is named in cache keys by the digest of its
    /// fingerprint: a change of the profile must change the digest (set
    /// `SeccompProfile.dockerDefaultDigest` to the value this test reports),
    /// or a start would take a filter cached for the old profile.
    @Test func theDefaultProfilesDigestIsItsFingerprints() throws {
        var h = FNV1a64()
        h.combine(SeccompProfile.dockerDefault.fingerprint.utf8)
        #expect(String(h.value, radix: 16) == String(SeccompProfile.dockerDefaultDigest, radix: 16))
    }

    /// The default profile's filter, cached under its short key, is the one
    /// the profile compiles to; a profile that is not the default never
    /// finds it.
    @Test func theDefaultFilterIsCachedUnderItsDigest() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hako-seccomp-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = SeccompCompiler(cacheDirectory: dir)
        let caps: UInt64 = 0xa804_25fb
        let compiled = try SeccompCompiler.compile(.dockerDefault, capabilities: caps, host: .current)
        #expect(try c.defaultFilter(capabilities: caps) == compiled)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).count == 1, "cached")
        // The next start reads the file: proven by planting different (valid) bytes there.
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first)
        let cached = try FS.readFile("\(dir)/\(file)")
        let keyLength = Int(cached[0]) | Int(cached[1]) << 8
        #expect(keyLength < 300, "a short key, not the profile's fingerprint")
        let key = String(decoding: cached[4..<(4 + keyLength)], as: UTF8.self)
        let planted: [UInt8] = [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]  // ret ALLOW
        try FS.writeAtomic("\(dir)/\(file)", SeccompCompiler.cacheFile(key: key, filter: planted), durable: false)
        #expect(try c.defaultFilter(capabilities: caps) == planted)
        // The same profile given as a profile has the full fingerprint as its key: not that file.
        #expect(try c.filter(.dockerDefault, capabilities: caps) == compiled)
        // Other capabilities: another key.
        #expect(try c.defaultFilter(capabilities: caps | 1 << 21) != planted)
    }

    /// The compiled filter is cached under a hash of all it depends on, and a
    /// cached file is used only when the text it was written for matches.
    @Test func filtersAreCachedByWhatShapesThem() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hako-seccomp-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = SeccompCompiler(cacheDirectory: dir)
        let caps: UInt64 = 0xa804_25fb
        let first = try c.filter(.dockerDefault, capabilities: caps)
        let key = c.cacheKey(.dockerDefault, capabilities: caps)
        let file = "\(dir)/\(SeccompCompiler.fileName(key)).bpf"
        #expect(SeccompCompiler.fileName(key).count == 16)
        #expect(SeccompCompiler.cachedFilter(try FS.readFile(file), key: key) == first)
        // The next start reads the file: proven by planting different (valid) bytes there.
        let planted: [UInt8] = [0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]  // ret ALLOW
        try FS.writeAtomic(file, SeccompCompiler.cacheFile(key: key, filter: planted), durable: false)
        #expect(try c.filter(.dockerDefault, capabilities: caps) == planted)
        // A file written for other text under the same name (a hash collision) is not used.
        try FS.writeAtomic(file, SeccompCompiler.cacheFile(key: key + " ", filter: planted), durable: false)
        #expect(try c.filter(.dockerDefault, capabilities: caps) == first)
        // Truncated or odd files are not used either.
        #expect(SeccompCompiler.cachedFilter([9, 9], key: key) == nil)
        #expect(SeccompCompiler.cachedFilter([200, 0, 0, 0, 1], key: key) == nil)
        #expect(SeccompCompiler.cachedFilter(SeccompCompiler.cacheFile(key: key, filter: [1, 2, 3]), key: key) == nil)
        // Other capabilities, another profile: other keys.
        #expect(c.cacheKey(.dockerDefault, capabilities: caps | 1 << 21) != key)
        var other = SeccompProfile.dockerDefault
        other.defaultErrnoRet = 38
        #expect(c.cacheKey(other, capabilities: caps) != key)
    }
}
