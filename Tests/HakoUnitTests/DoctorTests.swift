import Foundation
@testable import HakoEngine
import Testing

/// `hako doctor` against fake /proc, /sys and /boot trees of Raspberry Pi OS hosts.
@Suite struct DoctorTests {
    /// A throwaway tree: path (from /) → contents; "" makes an empty file.
    final class FakeHost {
        let root: String
        init(_ files: [String: String]) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("hako-doctor-\(UUID().uuidString)").path
            for (path, text) in files {
                let full = root + path
                try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try text.write(toFile: full, atomically: false, encoding: .utf8)
            }
        }
        func run(release: String = "6.6.51+rpt-rpi-v8", machine: String = "aarch64", pageSize: Int = 4096) -> [Doctor.Check] {
            Doctor.run(.rooted(at: root, kernelRelease: release, machine: machine, pageSize: pageSize))
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }
    }

    /// Raspberry Pi OS 12 on a Pi 4 as flashed: cgroup v2, memory controller
    /// disabled by the firmware's default cmdline, vxlan not loaded.
    static func piOS(_ extra: [String: String] = [:], drop: Set<String> = []) -> [String: String] {
        var files: [String: String] = [
            "/proc/self/mountinfo": unifiedMountinfo,
            "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io pids\n",
            "/proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t80\t1\ncpu\t0\t80\t1\nmemory\t0\t80\t0\npids\t0\t80\t1\n",
            "/proc/self/status": "Name:\tdoctor\nSeccomp:\t0\n",
            "/proc/filesystems": "nodev\tcgroup2\nnodev\toverlay\n",
            "/proc/cmdline": "coherent_pool=1M 8250.nr_uarts=0 cgroup_disable=memory console=ttyS0,115200 root=PARTUUID=1234-02 rootwait\n",
            "/proc/device-tree/model": "Raspberry Pi 4 Model B Rev 1.4\0",
            "/boot/firmware/cmdline.txt": "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait\n",
            "/sys/module/nf_tables/refcnt": "0\n",
            "/sys/module/veth/refcnt": "0\n",
            "/proc/sys/net/core/bpf_jit_enable": "1\n",
        ]
        for ns in ["mnt", "pid", "net", "uts", "ipc", "cgroup", "user"] { files["/proc/self/ns/\(ns)"] = "" }
        for k in drop { files[k] = nil }
        files.merge(extra) { $1 }
        return files
    }

    func check(_ checks: [Doctor.Check], _ name: String) -> Doctor.Check? { checks.first { $0.name == name } }

    /// A Pi has no real-time clock: an unsynchronised or never-set clock is
    /// reported, with what to enable.
    @Test func theClockIsCheckedForSynchronisation() throws {
        let host = try FakeHost(Self.piOS())
        func clock(now: Double = 1_796_000_000, _ sync: Doctor.ClockSync?) throws -> Doctor.Check {
            try #require(check(Doctor.run(.rooted(at: host.root, kernelRelease: "6.6.51+rpt-rpi-v8", now: now, clock: sync)), "clock"))
        }
        let synced = try clock(Doctor.ClockSync(synchronised: true, maxErrorMicroseconds: 12_000))
        #expect(synced.level == .ok && synced.detail == "2026-11-30T00:53:20Z, synchronised (estimated error 12 ms)", "\(synced.detail)")
        let unsynced = try clock(Doctor.ClockSync(synchronised: false, maxErrorMicroseconds: 16_000_000))
        #expect(unsynced.level == .warning && unsynced.detail.contains("not synchronised"), "\(unsynced.detail)")
        #expect(unsynced.fix?.contains("timedatectl set-ntp true") == true && unsynced.fix?.contains("systemd-time-wait-sync") == true)
        let never = try clock(now: 0, Doctor.ClockSync(synchronised: false, maxErrorMicroseconds: 16_000_000))
        #expect(never.level == .missing && never.detail.contains("1970-01-01T00:00:00Z"), "\(never.detail)")
        #expect(try clock(nil).level == .warning)
        // This machine's kernel answers adjtimex without privilege.
        #expect(Doctor.ClockSync.kernel() != nil)
    }

    @Test func memoryCgroupDisabledOnAPiNamesTheExactCmdlineChange() throws {
        let checks = try FakeHost(Self.piOS()).run()
        let memory = try #require(check(checks, "memory cgroup"))
        #expect(memory.level == .missing)
        #expect(memory.detail.contains("cgroup_disable=memory"))
        let fix = try #require(memory.fix)
        #expect(fix.contains("append \"cgroup_enable=memory cgroup_memory=1\" to /boot/firmware/cmdline.txt"), "\(fix)")
        #expect(fix.contains("remove that word"))
        #expect(check(checks, "platform")?.detail == "aarch64, page size 4 KiB, Raspberry Pi 4 Model B Rev 1.4")
        #expect(check(checks, "cgroups")?.detail.hasPrefix("v2") == true)
    }

    @Test func olderPiOSKeepsCmdlineInBoot() throws {
        let files = Self.piOS(["/boot/cmdline.txt": "console=tty1 root=/dev/mmcblk0p2\n", "/proc/cmdline": "console=tty1\n"], drop: ["/boot/firmware/cmdline.txt"])
        let memory = try #require(check(try FakeHost(files).run(release: "5.10.103-v7l+", machine: "armv7l"), "memory cgroup"))
        #expect(memory.fix?.contains("to /boot/cmdline.txt") == true, "\(memory.fix ?? "")")
        #expect(memory.fix?.contains("remove that word") == false)
    }

    @Test func memoryEnabledIsOK() throws {
        let files = Self.piOS([
            "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
            "/proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t80\t1\n",
            "/proc/cmdline": "cgroup_enable=memory cgroup_memory=1 rootwait\n",
        ])
        #expect(check(try FakeHost(files).run(), "memory cgroup")?.level == .ok)
    }

    @Test func vxlanMissingSaysHowToLoadIt() throws {
        let checks = try FakeHost(Self.piOS()).run()
        let vxlan = try #require(check(checks, "vxlan"))
        #expect(vxlan.level == .warning)
        #expect(vxlan.fix?.contains("modprobe vxlan") == true && vxlan.fix?.contains("/etc/modules-load.d/hako.conf") == true)
        let loaded = try FakeHost(Self.piOS(["/sys/module/vxlan/refcnt": "1\n"])).run()
        #expect(check(loaded, "vxlan")?.level == .ok)
        // Present as a module file of this kernel counts too.
        let file = try FakeHost(Self.piOS(["/lib/modules/6.6.51+rpt-rpi-v8/kernel/drivers/net/vxlan.ko.xz": ""])).run()
        #expect(check(file, "vxlan")?.level == .ok)
    }

    @Test func legacyIptables() throws {
        // nf_tables present, no legacy tables: fine.
        #expect(check(try FakeHost(Self.piOS()).run(), "iptables")?.level == .ok)
        // Legacy tables with rules beside nftables: a warning naming them and the switch.
        let mixed = try FakeHost(Self.piOS(["/proc/net/ip_tables_names": "nat\nfilter\n"])).run()
        let w = try #require(check(mixed, "iptables"))
        #expect(w.level == .warning && w.detail.contains("nat filter"))
        #expect(w.fix?.contains("update-alternatives --set iptables /usr/sbin/iptables-nft") == true)
        // A legacy-only kernel: hako cannot publish ports.
        let legacyOnly = try FakeHost(Self.piOS(["/sys/module/ip_tables/refcnt": "1\n", "/proc/net/ip_tables_names": "filter\n"], drop: ["/sys/module/nf_tables/refcnt"])).run()
        #expect(check(legacyOnly, "iptables")?.level == .missing)
        #expect(check(legacyOnly, "nftables")?.level == .warning)
        // nf_tables built into the kernel (modules.builtin) is there, module or not.
        let builtin = try FakeHost(Self.piOS(["/lib/modules/6.6.51+rpt-rpi-v8/modules.builtin": "kernel/net/netfilter/x_tables.ko\nkernel/net/netfilter/nf_tables.ko\n",
                                              "/proc/net/ip_tables_names": "filter\n"], drop: ["/sys/module/nf_tables/refcnt"])).run()
        #expect(check(builtin, "nftables")?.level == .ok)
        #expect(check(builtin, "iptables")?.level == .warning)
    }

    @Test func cgroupV1ForcedByTheCmdline() throws {
        let files = Self.piOS([
            "/proc/self/mountinfo": hybridMountinfo,
            "/proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t4\t80\t1\n",
            "/proc/cmdline": "systemd.unified_cgroup_hierarchy=0 cgroup_enable=memory cgroup_memory=1\n",
        ])
        let checks = try FakeHost(files).run()
        let cg = try #require(check(checks, "cgroups"))
        #expect(cg.detail.hasPrefix("v1 hybrid") && cg.detail.contains("forced by the kernel command line"))
        #expect(cg.fix?.contains("remove systemd.unified_cgroup_hierarchy=0 from /boot/firmware/cmdline.txt") == true)
        #expect(check(checks, "memory cgroup")?.level == .ok)
    }

    @Test func notAPi() throws {
        let files = Self.piOS(["/proc/cmdline": "BOOT_IMAGE=/vmlinuz root=/dev/sda1 cgroup_disable=memory\n"], drop: ["/proc/device-tree/model", "/boot/firmware/cmdline.txt"])
        let checks = try FakeHost(files).run(release: "6.1.0-13-amd64", machine: "x86_64")
        #expect(check(checks, "platform")?.detail == "x86_64, page size 4 KiB")
        #expect(check(checks, "memory cgroup")?.fix?.contains("GRUB_CMDLINE_LINUX") == true)
        // A Pi 5 kernel with 16 KiB pages is a supported platform.
        #expect(check(try FakeHost(Self.piOS()).run(release: "6.6.51+rpt-rpi-2712", pageSize: 16384), "platform")?.detail.contains("16 KiB") == true)
        #expect(check(try FakeHost(Self.piOS()).run(machine: "riscv64"), "platform")?.level == .warning)
    }
}
