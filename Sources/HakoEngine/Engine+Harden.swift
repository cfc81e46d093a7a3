#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoImage
import HakoRuntime
import HakoSecurity
import HakoSystem

/// What a container's processes get at each start: resolved from its stored
/// configuration (capabilities for its user, the compiled seccomp filter,
/// device nodes read from the host now).
struct Hardening {
    var capabilities: Capabilities
    var seccomp: [UInt8]?
    var noNewPrivileges: Bool
    var deviceRules: [DeviceRule]
    var devices: [DeviceNode]

    /// The part `exec` shares with the init: capabilities, seccomp, no_new_privs.
    func apply(to p: inout ProcessSpec) {
        p.capabilities = capabilities
        p.seccomp = seccomp
        p.noNewPrivileges = noNewPrivileges
    }
}

extension Engine {
    /// `devices`: read the --device nodes from the host (a start); `exec` needs none.
    func hardening(_ config: ContainerConfig, user: ResolvedUser, devices withDevices: Bool = true) throws -> Hardening {
        let iso = config.effectiveIsolation
        let caps = CapabilityPolicy.capabilities(add: iso.capAdd, drop: iso.capDrop, privileged: iso.privileged)
        let added = iso.privileged || iso.capAdd.first == "ALL" ? CapabilityNames.all : CapabilityNames.mask(iso.capAdd)
        let sets = CapabilityPolicy.sets(caps, explicitlyAdded: added, rootUser: user.uid == 0)
        var seccomp: [UInt8]?
        if !iso.privileged {
            switch iso.seccomp {
            case .unconfined: seccomp = nil
            case .default: seccomp = try seccompCompiler.defaultFilter(capabilities: caps)
            case .profile(let p): seccomp = try seccompCompiler.filter(p, capabilities: caps)
            }
        }
        var rules = iso.privileged ? [DeviceRule.allowAll] : DeviceRules.dockerDefault
        var devices: [DeviceNode] = []
        for d in iso.devices where withDevices {
            var node = try Engine.deviceNode(d.host, flag: "--device")
            rules.append(DeviceRule(node.type == UInt8(ascii: "b") ? .block : .char, node.major, node.minor,
                                    DeviceAccess(parsing: d.permissions) ?? .all))
            node.source = node.path
            node.path = d.container
            devices.append(node)
        }
        rules += iso.deviceCgroupRules
        return Hardening(
            capabilities: Capabilities(bounding: sets.bounding, effective: sets.effective, permitted: sets.permitted,
                                       inheritable: sets.inheritable, ambient: sets.ambient),
            seccomp: seccomp, noNewPrivileges: iso.noNewPrivileges, deviceRules: rules, devices: devices)
    }
}

extension SpecBuilder {
    /// Docker's masked paths: kernel state a container has no business reading.
    public static let maskedPaths = [
        "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    /// Docker's read-only paths.
    public static let readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    /// The container's hardening laid onto its runtime spec.
    static func harden(_ spec: RuntimeSpec, config: ContainerConfig, _ h: Hardening) -> RuntimeSpec {
        var r = spec
        let iso = config.effectiveIsolation
        h.apply(to: &r.process)
        for u in iso.ulimits {
            guard let res = IsolationConfig.Ulimit.resources[u.name] else { continue }
            func value(_ v: Int64) -> UInt64 { v < 0 ? UInt64.max : UInt64(v) }
            r.process.rlimits.append(Rlimit(resource: res, soft: value(u.soft), hard: value(u.hard)))
        }
        // Written for every container, as Docker does: the starter's own score
        // (the agent runs at -500 so that containers go first) is never inherited.
        r.process.oomScoreAdj = iso.oomScoreAdj ?? 0
        if !iso.privileged && !iso.unmaskedPaths {
            r.maskedPaths = maskedPaths
            r.readonlyPaths = readonlyPaths
        }
        if iso.privileged {
            // --privileged: a writable /sys and every host device.
            for i in r.mounts.indices where r.mounts[i].fstype == "sysfs" { r.mounts[i].flags &= ~HAKO_MS_RDONLY }
            r.hostDevices = true
        }
        r.readonlyRoot = iso.readOnlyRoot
        r.devices += h.devices
        r.sysctls = iso.sysctls.map { ($0.key, $0.value) }
        if let u = iso.userns, let range = u.range {
            r.namespaces.user = .new
            r.uidMappings = [IDMap(inside: 0, outside: range.start, count: range.count)]
            r.gidMappings = [IDMap(inside: 0, outside: range.start, count: range.count)]
            if var o = r.overlay {
                // The host image is the host's own files: they stay the host's (not idmapped).
                o.detached = true
                o.idmapLower = u.idmapped && config.imageID != ImageStore.hostImageID
                r.overlay = o
            }
        }
        return r
    }
}
