#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HakoSystem
import Testing

/// busybox plus `probe`, a small static C program that makes the system calls
/// a test names and prints each result ("keyctl EPERM", "fork ok"), so a test
/// checks seccomp, devices and file descriptors from inside the container.
/// Also `/evil`, a symlink aimed out of the root (escape tests).
enum ProbeImage {
    static let source = #"""
    #define _GNU_SOURCE
    #include <dirent.h>
    #include <errno.h>
    #include <fcntl.h>
    #include <linux/sched.h>
    #include <sched.h>
    #include <signal.h>
    #include <stdio.h>
    #include <string.h>
    #include <sys/personality.h>
    #include <sys/socket.h>
    #include <sys/syscall.h>
    #include <sys/wait.h>
    #include <unistd.h>

    static void child_done(long r) { if (r == 0) _exit(0); if (r > 0) waitpid((pid_t)r, NULL, 0); }

    int main(int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
            const char *w = argv[i];
            long r = -1;
            errno = 0;
            if (!strcmp(w, "keyctl")) r = syscall(SYS_keyctl, 0, -3, 0);
            else if (!strcmp(w, "unshare")) r = unshare(CLONE_NEWUTS);
            else if (!strcmp(w, "mount")) r = syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
            else if (!strcmp(w, "clone-newuser")) { r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0); child_done(r); }
            else if (!strcmp(w, "clone3")) {
                struct clone_args a; memset(&a, 0, sizeof a); a.exit_signal = SIGCHLD;
                r = syscall(SYS_clone3, &a, sizeof a); child_done(r);
            }
            else if (!strcmp(w, "fork")) { r = fork(); child_done(r); }
            else if (!strcmp(w, "vsock")) { r = socket(40, SOCK_STREAM, 0); if (r >= 0) close((int)r); }
            else if (!strcmp(w, "inet")) { r = socket(AF_INET, SOCK_DGRAM, 0); if (r >= 0) close((int)r); }
            else if (!strcmp(w, "personality")) { r = personality(0x0400000); if (r >= 0) personality((unsigned long)r); }
            else if (!strcmp(w, "getpid")) r = getpid();
            else if (!strncmp(w, "open:", 5)) { r = open(w + 5, O_RDONLY); if (r >= 0) close((int)r); }
            else if (!strncmp(w, "openw:", 6)) { r = open(w + 6, O_WRONLY); if (r >= 0) close((int)r); }
            else if (!strcmp(w, "fds")) {
                DIR *d = opendir("/proc/self/fd");
                int self = d ? dirfd(d) : -1;
                struct dirent *e;
                printf("fds");
                while (d && (e = readdir(d))) if (e->d_name[0] != '.' && atoi(e->d_name) != self) printf(" %s", e->d_name);
                printf("\n");
                if (d) closedir(d);
                continue;
            }
            if (r < 0) printf("%s %s\n", w, strerrorname_np(errno)); else printf("%s ok\n", w);
        }
        return 0;
    }
    """#

    /// The image tarball, built once per test process (nil when no C compiler can link statically).
    static let tarball: String? = {
        let dir = "/tmp/hako-probe-\(getpid())"
        let rootfs = dir + "/rootfs"
        let fm = FileManager.default
        try? fm.removeItem(atPath: dir)
        atexit { try? FileManager.default.removeItem(atPath: "/tmp/hako-probe-\(getpid())") }
        for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev"] {
            try? fm.createDirectory(atPath: "\(rootfs)/\(d)", withIntermediateDirectories: true)
        }
        fm.createFile(atPath: dir + "/probe.c", contents: Data(source.utf8))
        let cc = Subprocess.run(["/usr/bin/cc", "-static", "-O1", "-o", rootfs + "/bin/probe", dir + "/probe.c"])
        guard cc.status == 0 else { Issue.record("cannot build the probe: \(cc.stderr)"); return nil }
        _ = try? fm.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/bin/busybox")
        for a in Subprocess.run(["/bin/busybox", "--list"]).stdout.split(separator: "\n") where a != "busybox" {
            try? fm.createSymbolicLink(atPath: "\(rootfs)/bin/\(a)", withDestinationPath: "busybox")
        }
        fm.createFile(atPath: rootfs + "/etc/passwd", contents: Data("root:x:0:0:root:/root:/bin/sh\ntester:x:1000:1000::/tmp:/bin/sh\n".utf8))
        fm.createFile(atPath: rootfs + "/etc/group", contents: Data("root:x:0:\ntester:x:1000:\n".utf8))
        // Symlinks that would leave the root if followed on the host: to a
        // directory that exists on both sides, and to one that exists nowhere.
        try? fm.createSymbolicLink(atPath: rootfs + "/evil", withDestinationPath: "/../../../../../tmp")
        try? fm.createSymbolicLink(atPath: rootfs + "/dangling", withDestinationPath: "/../../../../../tmp/hako-escape-\(getpid())")
        chmod(rootfs + "/tmp", 0o1777)
        let tar = dir + "/probe.tar"
        let r = Subprocess.run(["/bin/tar", "-C", rootfs, "--numeric-owner", "-cf", tar, "."])
        try? fm.removeItem(atPath: rootfs)
        return r.status == 0 ? tar : nil
    }()

    static var escapeTarget: String { "/tmp/hako-escape-\(getpid())" }
}

extension TestHost {
    /// A host with the probe image imported as `probe:test`.
    static func withProbe(_ tag: String) -> TestHost {
        let h = TestHost.make(tag)
        if let t = ProbeImage.tarball {
            let r = h.hako("import", t, "probe:test")
            if r.status != 0 { Issue.record("cannot import the probe image: \(r.stderr)") }
        }
        // --userns auto: the container's own user walks the data root's directories.
        chmod(h.base, 0o711)
        return h
    }

    var probe: String { "probe:test" }

    /// `hako` with extra environment (e.g. HAKO_USERNS_RANGE).
    func hako(env extra: [String: String], _ args: String...) -> Output {
        Subprocess.run(prefix + [Binaries.hako] + args, env: env.merging(extra) { $1 }, timeout: 60)
    }

    /// A file of a container's cgroup: in the v1 `hierarchy` (this machine is
    /// hybrid), or in its one directory on a cgroup v2 host (the VM tier).
    func cgroupFile(_ hierarchy: String, _ id: String, _ file: String) -> String? {
        let dir = TestHost.cgroupV2 ? "/sys/fs/cgroup/\(cgroupParent)/\(id)" : "/sys/fs/cgroup/\(hierarchy)/\(cgroupParent)/\(id)"
        return (try? String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8))?.trimmed
    }
}
