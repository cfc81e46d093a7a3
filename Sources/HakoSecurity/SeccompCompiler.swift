import CHakoShim
import CSeccomp
#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// What a filter is compiled for: the architecture and kernel of this host.
public struct SeccompHost: Sendable, Equatable {
    /// Go's name of the architecture, as profiles' `arches` spell it (amd64, arm64, arm …).
    public var arch: String
    public var kernel: (major: Int, minor: Int)

    public static func == (a: SeccompHost, b: SeccompHost) -> Bool { a.arch == b.arch && a.kernel == b.kernel }

    /// libseccomp's name of the architecture.
    public var libseccompArch: String {
        switch arch {
        case "amd64": return "x86_64"
        case "arm64": return "aarch64"
        case "386": return "x86"
        default: return arch
        }
    }

    public init(arch: String, kernel: (major: Int, minor: Int)) {
        self.arch = arch
        self.kernel = kernel
    }

    public static let current: SeccompHost = {
        var u = utsname()
        uname(&u)
        func field<T>(_ v: T) -> String { withUnsafeBytes(of: v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        let machine = field(u.machine), release = field(u.release)
        let arch: String
        switch machine {
        case "x86_64": arch = "amd64"
        case "aarch64", "arm64": arch = "arm64"
        case let m where m.hasPrefix("arm"): arch = "arm"
        case "i386", "i486", "i586", "i686": arch = "x86"
        default: arch = machine
        }
        let v = release.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        return SeccompHost(arch: arch, kernel: (v.first ?? 0, v.count > 1 ? v[1] : 0))
    }()
}

/// Compiles seccomp profiles to raw BPF (struct sock_filter[]) with libseccomp,
/// and caches the result under a hash of everything that shapes it — profile,
/// capabilities, architecture, kernel, libseccomp — so that starting a
/// container with the default profile costs one small file read. The file
/// holds that text too and is used only when it matches exactly, so the hash
/// need not be a cryptographic one (and hako-runtime need not load OpenSSL).
public struct SeccompCompiler: Sendable {
    public let cacheDirectory: String?
    public let host: SeccompHost

    public init(cacheDirectory: String?, host: SeccompHost = .current) {
        self.cacheDirectory = cacheDirectory
        self.host = host
    }

    /// The filter for `profile` and a container holding `capabilities`.
    public func filter(_ profile: SeccompProfile, capabilities: UInt64) throws -> [UInt8] {
        try cached(cacheKey(profile, capabilities: capabilities)) { try Self.compile(profile, capabilities: capabilities, host: host) }
    }

    /// The filter for the default profile (`SeccompProfile.dockerDefault`).
    /// Its key names the profile by `dockerDefaultDigest`, so a start that
    /// finds the filter cached builds neither the profile nor its ~6 KB
    /// fingerprint (~1 M instructions, a seventh of a `hako run`'s CLI).
    public func defaultFilter(capabilities: UInt64) throws -> [UInt8] {
        try cached(cacheKey(fingerprint: SeccompProfile.dockerDefaultKey, capabilities: capabilities)) {
            try Self.compile(.dockerDefault, capabilities: capabilities, host: host)
        }
    }

    /// The cached filter for `key`, else `compile`'s, cached for the next start.
    private func cached(_ key: String, compile: () throws -> [UInt8]) throws -> [UInt8] {
        let path = cacheDirectory.map { "\($0)/\(Self.fileName(key)).bpf" }
        if let path, let file = try? FS.readFile(path), let cached = Self.cachedFilter(file, key: key) { return cached }
        let bpf = try compile()
        if let dir = cacheDirectory, let path {
            // A cache that cannot be written only costs the next start a compile.
            try? FS.makeDirectories(dir, mode: 0o700)
            FS.removeOrphanedTemporaries(in: dir)
            try? FS.writeAtomic(path, Self.cacheFile(key: key, filter: bpf), mode: 0o600, durable: false)
        }
        return bpf
    }

    /// Everything that shapes the filter, as text. "hako-seccomp-N" changes
    /// whenever the compiler itself changes what it emits.
    public func cacheKey(_ profile: SeccompProfile, capabilities: UInt64) -> String {
        cacheKey(fingerprint: profile.fingerprint, capabilities: capabilities)
    }

    func cacheKey(fingerprint: String, capabilities: UInt64) -> String {
        let v = seccomp_version()?.pointee
        return "hako-seccomp-4\n\(fingerprint)\ncaps \(String(capabilities, radix: 16))\narch \(host.arch)\n"
            + "kernel \(host.kernel.major).\(host.kernel.minor)\nlibseccomp \(v?.major ?? 0).\(v?.minor ?? 0).\(v?.micro ?? 0)\n"
    }

    /// The cache file's name: FNV-1a (64 bits) of the key, as 16 hex digits.
    static func fileName(_ key: String) -> String {
        var h = FNV1a64()
        h.combine(key.utf8)
        let hex = String(h.value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// A cache file: the key's length (4 bytes, little-endian), the key, the BPF.
    static func cacheFile(key: String, filter: [UInt8]) -> [UInt8] {
        let k = Array(key.utf8)
        let n = UInt32(k.count)
        return [UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 24)] + k + filter
    }

    /// The BPF in a cache file, or nil unless the file was written for exactly `key`.
    static func cachedFilter(_ file: [UInt8], key: String) -> [UInt8]? {
        guard file.count >= 4 else { return nil }
        let n = Int(file[0]) | Int(file[1]) << 8 | Int(file[2]) << 16 | Int(file[3]) << 24
        guard n <= file.count - 4, n == key.utf8.count else { return nil }
        // Compared as memory: element by element through the generic
        // `elementsEqual` it cost ~20 instructions a byte of a ~6 KB key.
        var k = key
        let same = k.withUTF8 { kb in
            file.withUnsafeBufferPointer { fb in
                guard n > 0, let kp = kb.baseAddress, let fp = fb.baseAddress else { return n == 0 }
                return memcmp(fp + 4, kp, n) == 0
            }
        }
        guard same else { return nil }
        let bpf = Array(file[(4 + n)...])
        return !bpf.isEmpty && bpf.count % 8 == 0 ? bpf : nil
    }

    /// Pure (but for libseccomp): profile → BPF bytes. libseccomp's filter,
    /// with the same decisions in fewer instructions: the kernel JIT-compiles
    /// each of them at every start (SeccompRanges).
    public static func compile(_ profile: SeccompProfile, capabilities: UInt64, host: SeccompHost) throws -> [UInt8] {
        SeccompRanges.compact(try libseccompFilter(profile, capabilities: capabilities, host: host))
    }

    /// The filter as libseccomp exports it.
    static func libseccompFilter(_ profile: SeccompProfile, capabilities: UInt64, host: SeccompHost) throws -> [UInt8] {
        let defaultAction = try action(profile.defaultAction, errno: profile.defaultErrnoRet, defaultErrno: profile.defaultErrnoRet)
        guard let ctx = seccomp_init(defaultAction) else {
            throw HakoError(.invalidArgument("seccomp"), "seccomp: invalid default action \(profile.defaultAction)")
        }
        defer { seccomp_release(ctx) }
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)  // no_new_privs is the runtime's choice
        // A binary tree of syscall numbers instead of a list: each call of the
        // container walks ~log2(n) comparisons, not hundreds (libseccomp >= 2.5).
        _ = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)

        // The filter's own architecture is the host's (the target's, when
        // compiling for another machine: a Raspberry Pi's aarch64 or arm).
        let native = try arch(host.libseccompArch)
        let builder = seccomp_arch_native()
        if native != builder {
            let r = seccomp_arch_add(ctx, native)
            if r != 0 && r != -EEXIST { throw HakoError.kernel("seccomp: cannot add architecture \(host.arch)", SystemError("seccomp_arch_add", errno: -r)) }
            _ = seccomp_arch_remove(ctx, builder)
        }
        var extra: [UInt32] = []
        if let map = profile.archMap {
            for m in map where try arch(m.architecture) == native { extra += try (m.subArchitectures ?? []).map(arch) }
        } else {
            extra = try (profile.architectures ?? []).map(arch)
        }
        for a in extra where a != native {
            let r = seccomp_arch_add(ctx, a)
            if r != 0 && r != -EEXIST { throw HakoError.kernel("seccomp: cannot add architecture \(a)", SystemError("seccomp_arch_add", errno: -r)) }
        }

        let capNames = Set(CapabilityNames.names(capabilities))
        for rule in profile.syscalls ?? [] where applies(rule, caps: capNames, host: host) {
            let act = try action(rule.action, errno: rule.errnoRet, defaultErrno: profile.defaultErrnoRet)
            if act == defaultAction { continue }
            let conditions = try (rule.args ?? []).map(condition)
            // Conditions on distinct arguments must all hold (one rule); several on
            // the same argument are alternatives (one rule each), as Docker reads them.
            let distinct = Set(conditions.map(\.arg)).count == conditions.count
            let groups: [[scmp_arg_cmp]] = conditions.isEmpty || distinct ? [conditions] : conditions.map { [$0] }
            for name in rule.allNames {
                let nr = seccomp_syscall_resolve_name(name)
                if nr == __NR_SCMP_ERROR { continue }  // unknown to this libseccomp: nothing to allow or deny
                for g in groups {
                    let r = g.withUnsafeBufferPointer { seccomp_rule_add_array(ctx, act, nr, UInt32(g.count), $0.baseAddress) }
                    if r != 0 && r != -EEXIST {
                        throw HakoError.kernel("seccomp: cannot add the rule for \(name)", SystemError("seccomp_rule_add", errno: -r))
                    }
                }
            }
        }

        let memfd = FileDescriptor(try sys("memfd_create") { hako_memfd("hako-seccomp") })
        let r = seccomp_export_bpf(ctx, memfd.rawValue)
        if r != 0 { throw HakoError.kernel("seccomp: cannot export the filter", SystemError("seccomp_export_bpf", errno: -r)) }
        lseek(memfd.rawValue, 0, SEEK_SET)
        let bpf = try memfd.readAll()
        guard !bpf.isEmpty, bpf.count % 8 == 0 else { throw HakoError(.failed, "seccomp: the exported filter is malformed") }
        return bpf
    }

    static func applies(_ rule: SeccompProfile.Rule, caps: Set<String>, host: SeccompHost) -> Bool {
        if let inc = rule.includes {
            if let c = inc.caps, !c.isEmpty, !c.allSatisfy(caps.contains) { return false }
            if let a = inc.arches, !a.isEmpty, !a.contains(host.arch) { return false }
            if let k = inc.minKernel, !kernel(host.kernel, atLeast: k) { return false }
        }
        if let exc = rule.excludes {
            if let c = exc.caps, c.contains(where: caps.contains) { return false }
            if let a = exc.arches, a.contains(host.arch) { return false }
            if let k = exc.minKernel, kernel(host.kernel, atLeast: k) { return false }
        }
        return true
    }

    static func kernel(_ k: (major: Int, minor: Int), atLeast v: String) -> Bool {
        let p = v.split(separator: ".").compactMap { Int($0) }
        let want = (p.first ?? 0, p.count > 1 ? p[1] : 0)
        return k.major != want.0 ? k.major > want.0 : k.minor >= want.1
    }

    static func action(_ name: String, errno: UInt32?, defaultErrno: UInt32?) throws -> UInt32 {
        switch name {
        case "SCMP_ACT_ALLOW": return SCMP_ACT_ALLOW
        case "SCMP_ACT_ERRNO": return 0x0005_0000 | ((errno ?? defaultErrno ?? UInt32(EPERM)) & 0xffff)
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return SCMP_ACT_KILL_THREAD
        case "SCMP_ACT_KILL_PROCESS": return SCMP_ACT_KILL_PROCESS
        case "SCMP_ACT_TRAP": return SCMP_ACT_TRAP
        case "SCMP_ACT_LOG": return SCMP_ACT_LOG
        case "SCMP_ACT_TRACE": return 0x7ff0_0000 | ((errno ?? UInt32(EPERM)) & 0xffff)
        default: throw HakoError(.invalidArgument("seccomp"), "seccomp: unsupported action \"\(name)\" (ALLOW, ERRNO, KILL, KILL_THREAD, KILL_PROCESS, TRAP, LOG, TRACE)")
        }
    }

    static func arch(_ name: String) throws -> UInt32 {
        var n = name.lowercased()
        if n.hasPrefix("scmp_arch_") { n.removeFirst("scmp_arch_".count) }
        let a = seccomp_arch_resolve_name(n)
        if a == 0 { throw HakoError(.invalidArgument("seccomp"), "seccomp: unknown architecture \"\(name)\"") }
        return a
    }

    static func condition(_ a: SeccompProfile.Arg) throws -> scmp_arg_cmp {
        let op: scmp_compare
        switch a.op {
        case "SCMP_CMP_NE": op = SCMP_CMP_NE
        case "SCMP_CMP_LT": op = SCMP_CMP_LT
        case "SCMP_CMP_LE": op = SCMP_CMP_LE
        case "SCMP_CMP_EQ": op = SCMP_CMP_EQ
        case "SCMP_CMP_GE": op = SCMP_CMP_GE
        case "SCMP_CMP_GT": op = SCMP_CMP_GT
        case "SCMP_CMP_MASKED_EQ": op = SCMP_CMP_MASKED_EQ
        default: throw HakoError(.invalidArgument("seccomp"), "seccomp: unknown comparison \"\(a.op)\"")
        }
        guard a.index < 6 else { throw HakoError(.invalidArgument("seccomp"), "seccomp: argument index \(a.index) out of range (0-5)") }
        return scmp_arg_cmp(arg: a.index, op: op, datum_a: a.value, datum_b: a.valueTwo ?? 0)
    }
}

extension SeccompProfile {
    /// FNV-1a of `dockerDefault.fingerprint`: the default profile's name in
    /// the filter cache's keys (`SeccompCompiler.defaultFilter`). A test
    /// fails when the profile changes and this does not.
    public static let dockerDefaultDigest: UInt64 = 0xf6ad_bc89_8f77_b307

    /// What stands for the default profile's fingerprint in a cache key.
    /// The fingerprint itself always begins with the default action, so no
    /// profile's fingerprint is this.
    static var dockerDefaultKey: String { "docker default, fingerprint digest \(String(dockerDefaultDigest, radix: 16))" }

    /// Every field that shapes the filter, as text: the cache key's input.
    public var fingerprint: String {
        var s = "\(defaultAction) \(defaultErrnoRet ?? 0)\n"
        for m in archMap ?? [] { s += "map \(m.architecture) \((m.subArchitectures ?? []).joined(separator: ","))\n" }
        s += "arches \((architectures ?? []).joined(separator: ","))\n"
        func filter(_ f: Filter?) -> String {
            guard let f else { return "-" }
            return "\((f.caps ?? []).joined(separator: ","))/\((f.arches ?? []).joined(separator: ","))/\(f.minKernel ?? "")"
        }
        for r in syscalls ?? [] {
            s += "\(r.allNames.joined(separator: ",")) \(r.action) \(r.errnoRet.map(String.init) ?? "-") "
            for a in r.args ?? [] { s += "[\(a.index) \(a.op) \(a.value) \(a.valueTwo ?? 0)]" }
            s += " \(filter(r.includes)) \(filter(r.excludes))\n"
        }
        return s
    }
}
