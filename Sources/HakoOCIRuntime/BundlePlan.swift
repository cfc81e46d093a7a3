#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSecurity
import HakoSystem

/// What `create` does with a bundle: config.json mapped onto the runtime core's
/// launch spec, device rules and cgroup writes. Every field hako-runtime cannot
/// honour is an error naming it.
public struct BundlePlan: Sendable {
    public var runtime: RuntimeSpec
    public var deviceRules: [DeviceRule]
    public var cgroupWrites: [OCICgroupWrite]
    /// What the config asks for that cannot apply as given (logged as warnings).
    public var warnings: [String] = []

    /// Options of `create`/`run` that shape the init.
    public struct Options: Sendable {
        public var noPivot = false
        public var noNewKeyring = false
        public var preserveFds: UInt32 = 0
        /// What hako-runtime itself may pass on (its bounding set); the host's, except in tests.
        public var ownBounding: UInt64 = CapabilityNames.all
        public init() {}
    }

    /// Device cgroup rules every container gets after its own (runc's list):
    /// mknod of anything, the default devices, terminals, tun.
    static let defaultDeviceRules: [DeviceRule] = [
        DeviceRule(.char, nil, nil, .mknod), DeviceRule(.block, nil, nil, .mknod),
        DeviceRule(.char, 1, 3), DeviceRule(.char, 1, 8), DeviceRule(.char, 1, 7), DeviceRule(.char, 5, 0),
        DeviceRule(.char, 1, 5), DeviceRule(.char, 1, 9), DeviceRule(.char, 136, nil), DeviceRule(.char, 5, 2),
        DeviceRule(.char, 10, 200),
    ]

    static func fail(_ field: String, _ why: String) -> HakoError { HakoError(.invalidArgument(field), "config.json: \(field): \(why)") }

    /// - Parameters:
    ///   - placement: the container's cgroups (created by the caller).
    ///   - cgroups: how the container sees them under a "cgroup" mount.
    static func make(_ spec: OCI.Spec, id: String, bundle: String, rootfs: String, placement: CgroupPlacement,
                     cgroups: CgroupView, cgroupVersion: Int, compiler: SeccompCompiler, options: Options) throws -> BundlePlan {
        // A container may be created without a process (the runtime spec); `start` refuses it.
        let p = spec.process ?? OCI.Process()
        let process = spec.process == nil ? ProcessSpec(args: [], env: []) : try processSpec(p, seccomp: spec.linux.seccomp, compiler: compiler, ownBounding: options.ownBounding)
        var r = RuntimeSpec(id: id, rootfs: rootfs, process: process)
        try namespaces(spec, into: &r)
        if let h = spec.hostname, !h.isEmpty {
            if case .host = r.namespaces.uts { throw fail("hostname", "setting it needs a new uts namespace (linux.namespaces)") }
            r.hostname = h
        }
        if let d = spec.domainname, !d.isEmpty {
            if case .host = r.namespaces.uts { throw fail("domainname", "setting it needs a new uts namespace (linux.namespaces)") }
            r.initOptions.domainname = d
        }
        r.readonlyRoot = spec.root?.readonly ?? false
        r.propagation = try rootPropagation(spec.linux.rootfsPropagation)
        r.mounts = try mounts(spec, bundle: bundle, cgroups: cgroups, cgroupNamespace: r.namespaces.cgroup != .host)
        let devBound = spec.mounts.contains { FS.normalize($0.destination) == "/dev" && ($0.type == "bind" || $0.options.contains("bind") || $0.options.contains("rbind")) }
        var rules = try spec.linux.resources?.deviceRules() ?? []
        if !devBound {
            r.devices = DeviceNode.standard
            r.mounts += [
                .symlink("/dev/fd", pointingTo: "/proc/self/fd"), .symlink("/dev/stdin", pointingTo: "/proc/self/fd/0"),
                .symlink("/dev/stdout", pointingTo: "/proc/self/fd/1"), .symlink("/dev/stderr", pointingTo: "/proc/self/fd/2"),
                .symlink("/dev/ptmx", pointingTo: "pts/ptmx"),
            ]
            if FS.exists("/proc/kcore") { r.mounts.append(.symlink("/dev/core", pointingTo: "/proc/kcore")) }
        }
        for (i, d) in spec.linux.devices.enumerated() {
            let node = try device(d, field: "linux.devices[\(i)]")
            r.devices.removeAll { $0.path == node.path }
            r.devices.append(node)
            if d.type != "p" {
                rules.append(DeviceRule(node.type == UInt8(ascii: "b") ? .block : .char, node.major, node.minor))
            }
        }
        rules += defaultDeviceRules
        r.maskedPaths = spec.linux.maskedPaths
        r.readonlyPaths = spec.linux.readonlyPaths
        r.sysctls = spec.linux.sysctl
        r.cgroup = placement
        if let per = spec.linux.personality { r.initOptions.personality = per.domain == "LINUX32" ? 0x0008 : 0 }
        if let s = spec.linux.seccomp { r.initOptions.seccompFlags = try seccompFlags(s.flags) }
        r.initOptions.noPivot = options.noPivot
        r.initOptions.preserveFds = options.preserveFds
        if !options.noNewKeyring { r.initOptions.keyring = "_ses.\(id)" }
        r.initOptions.umask = p.user.umask ?? 0o022
        let h = spec.hooks
        r.initOptions.hooks = try initHooks(h.createContainer, .createContainer, "hooks.createContainer")
            + initHooks(h.startContainer, .startContainer, "hooks.startContainer")
        r.initOptions.hookSync = !(h.prestart.isEmpty && h.createRuntime.isEmpty && h.createContainer.isEmpty && h.startContainer.isEmpty)
        if p.terminal, let size = p.consoleSize { r.process.terminal = TerminalSize(rows: UInt16(clamping: size.height), cols: UInt16(clamping: size.width)) }
        let writes = try spec.linux.resources?.cgroupWrites(version: cgroupVersion) ?? []
        var plan = BundlePlan(runtime: r, deviceRules: rules, cgroupWrites: writes)
        for (field, label) in [("linux.mountLabel", spec.linux.mountLabel), ("process.selinuxLabel", p.selinuxLabel)] {
            guard let label, !label.isEmpty else { continue }
            // On a host without SELinux a label has nothing to apply to; where SELinux is on, hako-runtime cannot apply it.
            if FS.exists("/sys/fs/selinux/enforce") { throw fail(field, "SELinux labels are not supported by hako-runtime") }
            plan.warnings.append("\(field) \"\(label)\" has no effect: this host has no SELinux")
        }
        if case .host = r.namespaces.mount {
            // runc's rule: no mount namespace, no mounts (they would be the host's); the root is a chroot.
            if p.terminal { throw fail("process.terminal", "a terminal needs a mount namespace (linux.namespaces)") }
            if !spec.mounts.isEmpty || !spec.linux.maskedPaths.isEmpty || !spec.linux.readonlyPaths.isEmpty || r.readonlyRoot {
                plan.warnings.append("linux.namespaces has no mount namespace: mounts, devices, maskedPaths, readonlyPaths and root.readonly do not apply (the root is entered with chroot)")
            }
            plan.runtime.mounts = []
            plan.runtime.devices = []
        }
        return plan
    }

    static func initHooks(_ hooks: [OCI.Hook], _ kind: InitHook.Kind, _ field: String) throws -> [InitHook] {
        guard hooks.count <= Int(HAKO_MAX_HOOKS) else { throw fail(field, "more than \(HAKO_MAX_HOOKS) hooks") }
        return try hooks.enumerated().map { i, h in
            guard h.args.count <= Int(HAKO_MAX_HOOK_ARGS), h.env.count <= Int(HAKO_MAX_HOOK_ENV) else {
                throw fail("\(field)[\(i)]", "at most \(HAKO_MAX_HOOK_ARGS) args and \(HAKO_MAX_HOOK_ENV) env entries")
            }
            return InitHook(kind: kind, path: h.path, args: h.args, env: h.env, timeout: h.timeout.map { UInt32(clamping: $0) })
        }
    }

    /// The process of config.json (or of `exec --process`) as the init path runs it.
    static func processSpec(_ p: OCI.Process, seccomp: OCI.Seccomp?, compiler: SeccompCompiler, field: String = "process",
                            appArmorEnabled: Bool = AppArmor.isEnabled(), ownBounding: UInt64 = CapabilityNames.all) throws -> ProcessSpec {
        guard let first = p.args.first, !first.isEmpty else { throw fail("\(field).args", "is required") }
        var out = ProcessSpec(args: p.args, env: p.env)
        out.cwd = p.cwd
        out.uid = p.user.uid
        out.gid = p.user.gid
        out.groups = p.user.additionalGids
        // The kernel's limit (NGROUPS_MAX); the launch spec has none of its own.
        guard out.groups.count <= 65_536 else { throw fail("\(field).user.additionalGids", "at most 65536 groups (NGROUPS_MAX)") }
        if p.terminal { out.terminal = TerminalSize(rows: 0, cols: 0) }
        if let c = p.capabilities {
            func mask(_ names: [String], _ set: String) throws -> UInt64 {
                try names.reduce(UInt64(0)) { m, n in
                    guard let bit = CapabilityNames.number(n) else { throw fail("\(field).capabilities.\(set)", "unknown capability \"\(n)\"") }
                    let b = UInt64(1) << UInt64(bit)
                    // No process can pass on what it does not hold (its bounding set).
                    guard ownBounding & b != 0 else {
                        throw fail("\(field).capabilities.\(set)", "\(n) is not in hako-runtime's own bounding set, so no container can get it")
                    }
                    return m | b
                }
            }
            let permitted = try mask(c.permitted, "permitted"), inheritable = try mask(c.inheritable, "inheritable")
            // The kernel keeps a capability ambient only while it is permitted and
            // inheritable; runc and crun drop the others from the ambient set too.
            out.capabilities = Capabilities(bounding: try mask(c.bounding, "bounding"), effective: try mask(c.effective, "effective"),
                                            permitted: permitted, inheritable: inheritable,
                                            ambient: try mask(c.ambient, "ambient") & permitted & inheritable)
        }
        var seen = Set<String>()
        for (i, l) in p.rlimits.enumerated() {
            guard let res = Rlimit.resource(named: l.type) else { throw fail("\(field).rlimits[\(i)].type", "unknown resource \"\(l.type)\"") }
            guard seen.insert(l.type).inserted else { throw fail("\(field).rlimits[\(i)].type", "\(l.type) is given twice") }
            guard l.soft <= l.hard else { throw fail("\(field).rlimits[\(i)]", "soft limit above the hard limit") }
            out.rlimits.append(Rlimit(resource: res, soft: l.soft, hard: l.hard))
        }
        out.noNewPrivileges = p.noNewPrivileges
        out.oomScoreAdj = p.oomScoreAdj
        if let a = p.apparmorProfile, !a.isEmpty {
            if appArmorEnabled {
                out.apparmorProfile = a
            } else if a != "unconfined" {  // without AppArmor every process is unconfined already
                throw fail("\(field).apparmorProfile", "AppArmor is not enabled on this host, so the profile \"\(a)\" cannot be applied")
            }
        }
        if let s = seccomp {
            do { out.seccomp = try compiler.filter(seccompProfile(s), capabilities: 0) } catch let e as HakoError {
                throw fail("linux.seccomp", e.message)
            }
        }
        return out
    }

    static func namespaces(_ spec: OCI.Spec, into r: inout RuntimeSpec) throws {
        var ns = Namespaces()
        ns.mount = .host; ns.pid = .host; ns.network = .host; ns.uts = .host; ns.ipc = .host; ns.cgroup = .host; ns.user = .host
        for (i, n) in spec.linux.namespaces.enumerated() {
            let mode: Namespaces.Mode = n.path.map { .path($0) } ?? .new
            if case .path(let p) = mode, !p.hasPrefix("/") { throw fail("linux.namespaces[\(i)].path", "must be absolute") }
            switch n.type {
            case "mount": ns.mount = mode
            case "pid": ns.pid = mode
            case "network": ns.network = mode
            case "uts": ns.uts = mode
            case "ipc": ns.ipc = mode
            case "cgroup": ns.cgroup = mode
            case "user": ns.user = mode
            case "time":
                if n.path != nil { throw fail("linux.namespaces[\(i)].path", "joining a time namespace is not supported by hako-runtime") }
                let mono = spec.linux.timeOffsets.first { $0.clock == "monotonic" }
                let boot = spec.linux.timeOffsets.first { $0.clock == "boottime" }
                r.initOptions.timeOffsets = ((mono?.secs ?? 0, Int64(mono?.nanosecs ?? 0)), (boot?.secs ?? 0, Int64(boot?.nanosecs ?? 0)))
            default: break
            }
        }
        if r.initOptions.timeOffsets == nil && !spec.linux.timeOffsets.isEmpty {
            throw fail("linux.timeOffsets", "needs a new time namespace (linux.namespaces)")
        }
        r.namespaces = ns
        let maps = spec.linux.uidMappings.map { IDMap(inside: $0.containerID, outside: $0.hostID, count: $0.size) }
        let gmaps = spec.linux.gidMappings.map { IDMap(inside: $0.containerID, outside: $0.hostID, count: $0.size) }
        if case .new = ns.user {
            guard !maps.isEmpty, !gmaps.isEmpty else { throw fail("linux.uidMappings", "a new user namespace needs uid and gid mappings") }
            r.uidMappings = maps
            r.gidMappings = gmaps
        } else if !maps.isEmpty || !gmaps.isEmpty {
            if case .host = ns.user { throw fail("linux.uidMappings", "mappings need a new user namespace (linux.namespaces)") }
        }
    }

    static func rootPropagation(_ p: String?) throws -> UInt64 {
        guard let p, !p.isEmpty else { return HAKO_MS_REC | HAKO_MS_SLAVE }
        guard let v = MountOptions.propagationTable[p] else { throw fail("linux.rootfsPropagation", "unknown propagation \"\(p)\"") }
        return v | HAKO_MS_REC
    }

    static func device(_ d: OCI.Device, field: String) throws -> DeviceNode {
        guard d.major >= 0, d.minor >= 0, d.major < 1 << 20, d.minor < 1 << 20 else { throw fail(field, "device numbers out of range") }
        let type: UInt8
        switch d.type {
        case "b": type = UInt8(ascii: "b")
        case "p": type = UInt8(ascii: "p")
        default: type = UInt8(ascii: "c")
        }
        return DeviceNode(path: FS.normalize(d.path), type: type, major: UInt32(d.major), minor: UInt32(d.minor),
                          mode: (d.fileMode ?? 0o666) & 0o7777, uid: d.uid ?? 0, gid: d.gid ?? 0)
    }

    static func seccompProfile(_ s: OCI.Seccomp) -> SeccompProfile {
        let rules = s.syscalls.map { r in
            SeccompProfile.Rule(r.names, r.action, errnoRet: r.errnoRet,
                                args: r.args.isEmpty ? nil : r.args.map { SeccompProfile.Arg($0.index, $0.value, $0.op, valueTwo: $0.valueTwo) })
        }
        return SeccompProfile(defaultAction: s.defaultAction, defaultErrnoRet: s.defaultErrnoRet,
                              architectures: s.architectures.isEmpty ? nil : s.architectures, syscalls: rules)
    }

    static let seccompFlagTable: [(String, UInt32)] = [
        ("SECCOMP_FILTER_FLAG_TSYNC", 1), ("SECCOMP_FILTER_FLAG_LOG", 2), ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
        ("SECCOMP_FILTER_FLAG_TSYNC_ESRCH", 16), ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 32),
    ]

    static func seccompFlags(_ names: [String]) throws -> UInt32 {
        try names.reduce(UInt32(0)) { f, n in
            guard let v = seccompFlagTable.first(where: { $0.0 == n })?.1 else { throw fail("linux.seccomp.flags", "unsupported flag \"\(n)\"") }
            return f | v
        }
    }
}
