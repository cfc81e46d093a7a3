#if canImport(Glibc)
import Glibc
#endif
import HakoSystem

/// The checks for Raspberry Pi OS (and any small ARM board): the board and
/// architecture, the kernel command line (cmdline.txt), legacy iptables.
extension Doctor {
    /// The board's name from the device tree ("Raspberry Pi 4 Model B Rev 1.4"); nil on other machines.
    static func boardModel(_ p: Probe) -> String? {
        for path in ["/proc/device-tree/model", "/sys/firmware/devicetree/base/model"] {
            if let m = p.read(path) {
                let name = String(m.unicodeScalars.filter { $0 != "\0" }).trimmed
                if !name.isEmpty { return name }
            }
        }
        return nil
    }

    /// Where the Pi's firmware reads the kernel command line: /boot/firmware
    /// since Raspberry Pi OS 12 (bookworm), /boot before.
    static func cmdlineTxt(_ p: Probe) -> String {
        p.exists("/boot/firmware/cmdline.txt") || !p.exists("/boot/cmdline.txt") ? "/boot/firmware/cmdline.txt" : "/boot/cmdline.txt"
    }

    static func cmdlineWords(_ p: Probe) -> [String] {
        (p.read("/proc/cmdline") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
    }

    static func piChecks(_ p: Probe, checks: inout [Check]) {
        let model = boardModel(p)
        // The board's model, or a Raspberry Pi OS kernel (6.6.51+rpt-rpi-v8).
        let isPi = model?.hasPrefix("Raspberry Pi") == true || p.kernelRelease.contains("rpi")
        let words = cmdlineWords(p)
        let cmdline = cmdlineTxt(p)
        let edit = isPi ? "\(cmdline) (one line; add the words at its end, separated by a space) and reboot"
                        : "the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot"

        var platform = "\(p.machine), page size \(p.pageSize / 1024) KiB"
        if let model { platform += ", \(model)" }
        let supported = ["x86_64", "aarch64", "armv7l", "armv6l"].contains(p.machine)
        checks.append(Check(name: "platform", level: supported ? .ok : .warning, detail: platform,
                            fix: supported ? nil : "hako is built and tested for x86_64, aarch64 (64-bit Raspberry Pi OS) and armv7l"))

        // The memory controller: the check above found it missing; say why and the exact change.
        if let i = checks.firstIndex(where: { $0.name == "memory cgroup" }), checks[i].level != .ok {
            let disabledBy = words.filter { $0 == "cgroup_disable=memory" }
            if !disabledBy.isEmpty { checks[i].detail += " (the kernel command line has cgroup_disable=memory)" }
            checks[i].fix = "append \"cgroup_enable=memory cgroup_memory=1\" to \(edit)"
                + (disabledBy.isEmpty ? "" : "; with cgroup_disable=memory there, remove that word")
        }

        // cgroup v1 vs v2: Raspberry Pi OS 12 boots cgroup v2; older images, or
        // systemd.unified_cgroup_hierarchy=0 on the command line, give v1.
        if let i = checks.firstIndex(where: { $0.name == "cgroups" }), checks[i].detail.hasPrefix("v1") {
            if words.contains("systemd.unified_cgroup_hierarchy=0") || words.contains("systemd.legacy_systemd_cgroup_controller=1") {
                checks[i].detail += " (forced by the kernel command line: systemd.unified_cgroup_hierarchy=0)"
                checks[i].fix = "remove systemd.unified_cgroup_hierarchy=0 from \(edit) to get cgroup v2 (hako supports both)"
            } else if checks[i].level != .ok {
                checks[i].fix = "add systemd.unified_cgroup_hierarchy=1 to \(edit) (hako supports both; v2 gives the device filter and cgroup.kill)"
            }
        }

        // vxlan: a module on Raspberry Pi OS, not loaded until asked for.
        if let i = checks.firstIndex(where: { $0.name == "vxlan" }), checks[i].level != .ok {
            checks[i].fix = "sudo modprobe vxlan && echo vxlan | sudo tee /etc/modules-load.d/hako.conf"
                + (isPi ? " (in Raspberry Pi OS's kernel package; after a kernel upgrade, reboot before modprobe)" : " (Debian/Ubuntu: linux-modules-extra)")
        }

        checks.append(iptablesCheck(p))
    }

    /// hako writes nftables through netlink. A host whose kernel only has the
    /// legacy x_tables (ip_tables), or whose legacy tables hold rules (set up
    /// by iptables-legacy, e.g. an old Docker), does not see them together:
    /// a legacy FORWARD policy of DROP still drops container traffic.
    static func iptablesCheck(_ p: Probe) -> Check {
        let release = p.kernelRelease
        let nft = p.exists("/sys/module/nf_tables") || p.exists("/lib/modules/\(release)/kernel/net/netfilter/nf_tables.ko")
            || p.exists("/lib/modules/\(release)/kernel/net/netfilter/nf_tables.ko.xz")
            || (p.read("/lib/modules/\(release)/modules.builtin") ?? "").contains("/nf_tables.ko\n")
        let legacyTables = (p.read("/proc/net/ip_tables_names") ?? "").split(separator: "\n").map { $0.trimmed }.filter { !$0.isEmpty }
        if !nft && (p.exists("/sys/module/ip_tables") || !legacyTables.isEmpty) {
            return Check(name: "iptables", level: .missing, detail: "the kernel has legacy iptables (ip_tables) but no nf_tables: hako's ports and NAT are nftables",
                         fix: "a kernel with CONFIG_NF_TABLES (Raspberry Pi OS: sudo apt full-upgrade; then sudo modprobe nf_tables)")
        }
        if !legacyTables.isEmpty {
            return Check(name: "iptables", level: .warning,
                         detail: "legacy iptables tables are loaded (\(legacyTables.joined(separator: " "))): their rules apply beside hako's nftables rules, a FORWARD policy of DROP there still drops container traffic",
                         fix: "move the rules to nftables: sudo update-alternatives --set iptables /usr/sbin/iptables-nft (and ip6tables), re-create them, then sudo iptables-legacy -F and -X, or reboot")
        }
        return Check(name: "iptables", level: .ok, detail: "no legacy iptables tables loaded", fix: nil)
    }
}

extension Doctor.Probe {
    /// A fake host: every path is looked up under `root` (a tree of files
    /// such as root/proc/cgroups), for tests.
    public static func rooted(at root: String, kernelRelease: String, machine: String = "aarch64", pageSize: Int = 4096,
                              now: Double = Timestamp.now().secondsSince1970,
                              clock: Doctor.ClockSync? = Doctor.ClockSync(synchronised: true, maxErrorMicroseconds: 0)) -> Doctor.Probe {
        Doctor.Probe(read: { try? FS.readString(root + $0) }, exists: { FS.exists(root + $0) }, kernelRelease: kernelRelease,
                     machine: machine, pageSize: pageSize, now: now, clock: clock)
    }
}
