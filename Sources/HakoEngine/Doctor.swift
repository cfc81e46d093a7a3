#if canImport(Glibc)
import Glibc
#endif
import CHakoShim
import HakoRuntime
import HakoSystem

/// `hako doctor`: what this kernel offers hako, and how to fix what is missing.
public enum Doctor {
    public enum Level: String, Codable, Sendable { case ok, warning, missing }

    public struct Check: Codable, Sendable {
        public var name: String
        public var level: Level
        public var detail: String
        public var fix: String?
    }

    /// Files the checks read, injectable for tests.
    public struct Probe: Sendable {
        public var read: @Sendable (String) -> String?
        public var exists: @Sendable (String) -> Bool
        public var kernelRelease: String
        /// uname's machine: x86_64, aarch64, armv7l.
        public var machine: String
        public var pageSize: Int
        /// The wall clock, seconds since 1970.
        public var now: Double
        /// The kernel's clock discipline (adjtimex); nil when it cannot be read.
        public var clock: ClockSync?

        public init(read: @escaping @Sendable (String) -> String?, exists: @escaping @Sendable (String) -> Bool, kernelRelease: String,
                    machine: String = "x86_64", pageSize: Int = 4096, now: Double = Timestamp.now().secondsSince1970,
                    clock: ClockSync? = ClockSync(synchronised: true, maxErrorMicroseconds: 0)) {
            self.read = read
            self.exists = exists
            self.kernelRelease = kernelRelease
            self.machine = machine
            self.pageSize = pageSize
            self.now = now
            self.clock = clock
        }

        public static var host: Probe {
            var u = utsname()
            uname(&u)
            let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let machine = withUnsafeBytes(of: u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return Probe(read: { try? FS.readString($0) }, exists: { FS.exists($0) }, kernelRelease: release,
                         machine: machine, pageSize: Int(sysconf(Int32(_SC_PAGESIZE))), clock: .kernel())
        }
    }

    /// Whether the kernel's clock is disciplined (by NTP: systemd-timesyncd,
    /// chrony, ntpd), as adjtimex(2) reports it without changing anything.
    public struct ClockSync: Sendable, Equatable {
        public var synchronised: Bool
        public var maxErrorMicroseconds: Int

        public init(synchronised: Bool, maxErrorMicroseconds: Int) {
            self.synchronised = synchronised
            self.maxErrorMicroseconds = maxErrorMicroseconds
        }

        public static func kernel() -> ClockSync? {
            var status: Int32 = 0
            var maxError = 0
            let state = hako_clock_state(&status, &maxError)
            guard state >= 0 else { return nil }
            // TIME_ERROR (5) or STA_UNSYNC: nobody has set the clock from a time source.
            return ClockSync(synchronised: state != 5 && status & 0x0040 == 0, maxErrorMicroseconds: maxError)
        }
    }

    /// No certificate of a cluster made by this version can predate this
    /// (2026-01-01): a clock before it was never set.
    static let earliestPlausibleTime: Double = 1_767_225_600

    static func clockCheck(_ p: Probe) -> Check {
        let now = Timestamp(seconds: Int64(p.now)).rfc3339.prefix(19) + "Z"
        let fix = "a Raspberry Pi has no real-time clock: enable a time service with a reachable NTP server (Raspberry Pi OS: sudo timedatectl set-ntp true, "
            + "systemd-timesyncd) and sudo systemctl enable systemd-time-wait-sync, so that hako's units start after the clock is set"
        if p.now < earliestPlausibleTime {
            return Check(name: "clock", level: .missing,
                         detail: "the clock says \(now), which is before this version of hako existed: certificates (the cluster's, registries') will look not valid yet",
                         fix: fix)
        }
        guard let c = p.clock else {
            return Check(name: "clock", level: .warning, detail: "\(now); whether it is synchronised cannot be read (adjtimex)", fix: nil)
        }
        if !c.synchronised {
            return Check(name: "clock", level: .warning,
                         detail: "\(now), not synchronised (the kernel has no time source): TLS certificates are checked against this clock",
                         fix: fix)
        }
        return Check(name: "clock", level: .ok, detail: "\(now), synchronised (estimated error \(c.maxErrorMicroseconds / 1000) ms)", fix: nil)
    }

    public static func run(_ p: Probe = .host, monitorPath: String? = nil) -> [Check] {
        var out: [Check] = []
        let release = p.kernelRelease
        let parts = release.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        let (major, minor) = (parts.first ?? 0, parts.count > 1 ? parts[1] : 0)
        out.append(major > 5 || (major == 5 && minor >= 8)
                   ? Check(name: "kernel", level: .ok, detail: "Linux \(release)", fix: nil)
                   : Check(name: "kernel", level: .missing, detail: "Linux \(release): hako needs 5.8 or newer (openat2, clone3 into a cgroup, pidfd)",
                           fix: "upgrade the kernel (Raspberry Pi OS: sudo apt full-upgrade)"))

        let ns = ["mnt", "pid", "net", "uts", "ipc", "cgroup", "user"]
        let missingNS = ns.filter { !p.exists("/proc/self/ns/\($0)") }
        out.append(missingNS.isEmpty
                   ? Check(name: "namespaces", level: .ok, detail: ns.joined(separator: " "), fix: nil)
                   : Check(name: "namespaces", level: .missing, detail: "missing: " + missingNS.joined(separator: " "),
                           fix: "a kernel built with CONFIG_\(missingNS.map { $0.uppercased() + "_NS" }.joined(separator: ", CONFIG_"))"))

        let filesystems = p.read("/proc/filesystems") ?? ""
        let modules = "/lib/modules/\(release)"
        let builtin = p.read("\(modules)/modules.builtin") ?? ""
        func module(_ name: String, _ path: String) -> Bool {
            p.exists("/sys/module/\(name)") || builtin.contains("/\(name).ko\n") || p.exists("\(modules)/kernel/\(path)/\(name).ko")
                || p.exists("\(modules)/kernel/\(path)/\(name).ko.xz") || p.exists("\(modules)/kernel/\(path)/\(name).ko.zst")
        }
        out.append(filesystems.contains("\toverlay") || module("overlay", "fs/overlayfs")
                   ? Check(name: "overlayfs", level: .ok, detail: "available", fix: nil)
                   : Check(name: "overlayfs", level: .missing, detail: "the overlay file system is not available", fix: "sudo modprobe overlay (and add it to /etc/modules)"))

        let host = CgroupHost.parse(mountinfo: p.read("/proc/self/mountinfo") ?? "")
        switch host.mode {
        case .unified:
            let ctrls = (p.read("\(host.unified ?? "/sys/fs/cgroup")/cgroup.controllers") ?? "").trimmed
            out.append(Check(name: "cgroups", level: .ok, detail: "v2 (unified) at \(host.unified ?? ""), controllers: \(ctrls)", fix: nil))
        case .hybrid:
            out.append(Check(name: "cgroups", level: .ok, detail: "v1 hybrid: v1 controllers \(host.v1.flatMap(\.controllers).joined(separator: " ")); cgroup2 at \(host.unified ?? "")", fix: nil))
        case .legacy:
            out.append(Check(name: "cgroups", level: .warning, detail: "v1 only: \(host.v1.flatMap(\.controllers).joined(separator: " "))",
                             fix: "cgroup v2 is preferred: add systemd.unified_cgroup_hierarchy=1 to the kernel command line"))
        case .none:
            out.append(Check(name: "cgroups", level: .missing, detail: "no cgroup file system mounted", fix: "mount cgroup2 at /sys/fs/cgroup"))
        }
        // /proc/cgroups: subsys_name hierarchy num_cgroups enabled
        let enabled = (p.read("/proc/cgroups") ?? "").split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line -> (String, Bool)? in
            let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            return f.count >= 4 ? (String(f[0]), f[3] == "1") : nil
        }
        let v2ctrls = (p.read("\(host.unified ?? "/sys/fs/cgroup")/cgroup.controllers") ?? "").split(separator: " ").map { $0.trimmed }
        for ctrl in ["memory", "cpu", "pids", "io", "cpuset", "freezer", "devices"] {
            let v1name = ctrl == "io" ? "blkio" : ctrl
            let present: Bool
            switch host.mode {
            case .unified:
                present = ["freezer", "devices"].contains(ctrl) || v2ctrls.contains(ctrl)
            default:
                present = host.v1Mount(v1name) != nil
            }
            let disabled = enabled.first { $0.0 == v1name }.map { !$0.1 } ?? false
            if present && !disabled { continue }
            if ctrl == "memory" {
                out.append(Check(name: "memory cgroup", level: .missing,
                                 detail: "the memory controller is \(disabled ? "disabled" : "not available"): --memory limits cannot be enforced",
                                 fix: "Raspberry Pi OS: append \"cgroup_enable=memory cgroup_memory=1\" to the single line in /boot/firmware/cmdline.txt (older releases: /boot/cmdline.txt) and reboot"))
            } else {
                out.append(Check(name: "\(ctrl) cgroup", level: .warning, detail: "the \(ctrl) controller is not available: limits that need it are refused",
                                 fix: "a kernel with CONFIG_CGROUP_\(ctrl.uppercased()) (or CONFIG_BLK_CGROUP for io)"))
            }
        }
        if host.mode != .none && !out.contains(where: { $0.name == "memory cgroup" }) {
            out.append(Check(name: "memory cgroup", level: .ok, detail: "enabled", fix: nil))
        }

        let seccomp = (p.read("/proc/self/status") ?? "").contains("Seccomp:")
        out.append(seccomp ? Check(name: "seccomp", level: .ok, detail: "available", fix: nil)
                           : Check(name: "seccomp", level: .missing, detail: "the kernel has no seccomp filter support", fix: "a kernel with CONFIG_SECCOMP_FILTER"))
        let bpf = p.exists("/proc/sys/kernel/unprivileged_bpf_disabled") || p.exists("/proc/sys/net/core/bpf_jit_enable")
        out.append(bpf ? Check(name: "bpf", level: .ok, detail: "bpf(2) available (cgroup v2 device filter)", fix: nil)
                       : Check(name: "bpf", level: .warning, detail: "bpf(2) not found: the cgroup v2 device filter cannot be attached", fix: "a kernel with CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF"))
        out.append(module("nf_tables", "net/netfilter")
                   ? Check(name: "nftables", level: .ok, detail: "nf_tables available", fix: nil)
                   : Check(name: "nftables", level: .warning, detail: "nf_tables not found: port publishing and NAT need it",
                           fix: "sudo modprobe nf_tables; hosts that only have legacy iptables need the nftables kernel modules"))
        out.append(module("vxlan", "drivers/net")
                   ? Check(name: "vxlan", level: .ok, detail: "vxlan available", fix: nil)
                   : Check(name: "vxlan", level: .warning, detail: "vxlan module not found: the cluster overlay needs it", fix: "sudo modprobe vxlan (package linux-modules-extra on some distributions)"))
        out.append(module("veth", "drivers/net") || module("bridge", "net/bridge")
                   ? Check(name: "veth/bridge", level: .ok, detail: "available", fix: nil)
                   : Check(name: "veth/bridge", level: .warning, detail: "veth or bridge modules not found: bridge networks need them", fix: "sudo modprobe veth bridge"))
        out.append(clockCheck(p))
        piChecks(p, checks: &out)
        if let m = monitorPath {
            out.append(p.exists(m) ? Check(name: "hako-monitor", level: .ok, detail: m, fix: nil)
                                   : Check(name: "hako-monitor", level: .missing, detail: "\(m) not found", fix: "install hako-monitor next to hako (make install)"))
        }
        return out
    }
}
