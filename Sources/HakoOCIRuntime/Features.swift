import HakoRuntime
import HakoSecurity
import HakoSystem

extension OCIRuntime {
    /// `features`: what this runtime implements, in the runtime spec's features.md format.
    public func features() -> JSON {
        func strings(_ a: [String]) -> JSON { .array(a.map(JSON.string)) }
        let mountOptions = ["bind", "rbind"] + MountOptions.flagTable.keys.sorted() + MountOptions.propagationTable.keys.sorted()
            + MountOptions.recursiveTable.keys.sorted()
        let caps = (0..<CapabilityNames.count).map(CapabilityNames.name)
        let seccomp: JSON = .object([
            ("enabled", .bool(true)),
            ("actions", strings(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                 "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"])),
            ("operators", strings(["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"])),
            ("archs", strings(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_RISCV64", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"])),
            ("knownFlags", strings(BundlePlan.seccompFlagTable.map(\.0))),
            ("supportedFlags", strings(BundlePlan.seccompFlagTable.map(\.0))),
        ])
        let linux: JSON = .object([
            ("namespaces", strings(["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"])),
            ("capabilities", strings(caps)),
            ("cgroup", .object([("v1", .bool(true)), ("v2", .bool(true)), ("systemd", .bool(true)), ("systemdUser", .bool(false)), ("rdma", .bool(false))])),
            ("seccomp", seccomp),
            ("apparmor", .object([("enabled", .bool(AppArmor.isEnabled()))])),
            ("selinux", .object([("enabled", .bool(false))])),
            ("intelRdt", .object([("enabled", .bool(false))])),
            ("mountExtensions", .object([("idmap", .object([("enabled", .bool(false))]))])),
        ])
        return .object([
            ("ociVersionMin", .string("1.0.0")), ("ociVersionMax", .string(OCI.specVersion)),
            ("hooks", strings(["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])),
            ("mountOptions", strings(mountOptions)),
            ("linux", linux),
            ("annotations", .object([("org.hako.runtime.version", .string(OCIRuntime.version))])),
        ])
    }

    /// `spec`: a default config.json (busybox-friendly, like runc's).
    public static func defaultSpec(terminal: Bool = true) -> JSON {
        func s(_ a: [String]) -> JSON { .array(a.map(JSON.string)) }
        func mount(_ dest: String, _ type: String, _ source: String, _ options: [String]) -> JSON {
            .object([("destination", .string(dest)), ("type", .string(type)), ("source", .string(source)), ("options", s(options))])
        }
        let caps = s(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
        return .object([
            ("ociVersion", .string(OCI.specVersion)),
            ("process", .object([
                ("terminal", .bool(terminal)),
                ("user", .object([("uid", .int(0)), ("gid", .int(0))])),
                ("args", s(["sh"])),
                ("env", s(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"])),
                ("cwd", .string("/")),
                ("capabilities", .object([("bounding", caps), ("effective", caps), ("permitted", caps), ("ambient", caps)])),
                ("rlimits", .array([.object([("type", .string("RLIMIT_NOFILE")), ("hard", .int(1024)), ("soft", .int(1024))])])),
                ("noNewPrivileges", .bool(true)),
            ])),
            ("root", .object([("path", .string("rootfs")), ("readonly", .bool(true))])),
            ("hostname", .string("hako")),
            ("mounts", .array([
                mount("/proc", "proc", "proc", []),
                mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
                mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
                mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
                mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
            ])),
            ("linux", .object([
                ("resources", .object([("devices", .array([.object([("allow", .bool(false)), ("access", .string("rwm"))])]))])),
                ("namespaces", .array(["pid", "network", "ipc", "uts", "mount", "cgroup"].map { .object([("type", .string($0))]) })),
                ("maskedPaths", s(["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                                   "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"])),
                ("readonlyPaths", s(["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"])),
            ])),
        ])
    }
}
