/// hako's default seccomp profile: equivalent to Docker's (default action
/// EPERM; the same allow-list and argument filters; the calls only some
/// capabilities unlock), covering x86_64 (with x86 and x32), aarch64 (with
/// arm) and arm, so the same profile serves the Raspberry Pis.
extension SeccompProfile {
    public static let dockerDefault: SeccompProfile = {
        typealias R = SeccompProfile.Rule
        typealias F = SeccompProfile.Filter
        func caps(_ c: String) -> F { F(caps: [c]) }
        var rules: [R] = [R(words(allowed))]
        rules.append(R(["process_vm_readv", "process_vm_writev", "ptrace"], includes: F(minKernel: "4.8")))
        // socket: anything but AF_VSOCK (40).
        rules.append(R(["socket"], args: [.init(0, 40, "SCMP_CMP_NE")]))
        // personality: only the harmless personas (PER_LINUX, PER_LINUX32, UNAME26 variants, query).
        for persona: UInt64 in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
            rules.append(R(["personality"], args: [.init(0, persona, "SCMP_CMP_EQ")]))
        }
        rules.append(R(["sync_file_range2", "swapcontext"], includes: F(arches: ["ppc64le"])))
        rules.append(R(["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
                       includes: F(arches: ["arm", "arm64"])))
        rules.append(R(["arch_prctl"], includes: F(arches: ["amd64", "x32"])))
        rules.append(R(["modify_ldt"], includes: F(arches: ["amd64", "x32", "x86"])))
        rules.append(R(["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"], includes: F(arches: ["s390", "s390x"])))
        rules.append(R(["riscv_flush_icache"], includes: F(arches: ["riscv64"])))
        rules.append(R(["open_by_handle_at"], includes: caps("CAP_DAC_READ_SEARCH")))
        rules.append(R(words(sysAdmin), includes: caps("CAP_SYS_ADMIN")))
        // clone without any CLONE_NEW* flag (0x7E020000) unless CAP_SYS_ADMIN; s390 swaps the first two arguments.
        let newNamespaces: UInt64 = 0x7E02_0000
        rules.append(R(["clone"], args: [.init(0, newNamespaces, "SCMP_CMP_MASKED_EQ")],
                       excludes: F(caps: ["CAP_SYS_ADMIN"], arches: ["s390", "s390x"])))
        var s390 = R(["clone"], args: [.init(1, newNamespaces, "SCMP_CMP_MASKED_EQ")],
                     includes: F(arches: ["s390", "s390x"]), excludes: caps("CAP_SYS_ADMIN"))
        s390.comment = "s390 parameter ordering for clone is different"
        rules.append(s390)
        // clone3's flags live in memory a filter cannot read: ENOSYS makes libcs fall back to clone.
        rules.append(R(["clone3"], "SCMP_ACT_ERRNO", errnoRet: 38, excludes: caps("CAP_SYS_ADMIN")))
        let byCapability: [(String, [String])] = [
            ("CAP_SYS_BOOT", ["reboot"]),
            ("CAP_SYS_CHROOT", ["chroot"]),
            ("CAP_SYS_MODULE", ["delete_module", "init_module", "finit_module"]),
            ("CAP_SYS_PACCT", ["acct"]),
            ("CAP_SYS_PTRACE", ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
            ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
            ("CAP_SYS_TIME", ["settimeofday", "stime", "clock_settime", "clock_settime64"]),
            ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
            ("CAP_SYS_NICE", ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
            ("CAP_SYSLOG", ["syslog"]),
            ("CAP_BPF", ["bpf"]),
            ("CAP_PERFMON", ["perf_event_open"]),
        ]
        for (cap, names) in byCapability { rules.append(R(names, includes: caps(cap))) }
        return SeccompProfile(
            defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 1,
            archMap: [
                .init("SCMP_ARCH_X86_64", ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
                .init("SCMP_ARCH_AARCH64", ["SCMP_ARCH_ARM"]),
                .init("SCMP_ARCH_RISCV64", nil),
            ],
            syscalls: rules)
    }()

    /// Split as bytes: splitting by Character (grapheme breaking) cost every
    /// container start ~1.7 M instructions for these few kilobytes.
    private static func words(_ s: String) -> [String] {
        s.utf8.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") }).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls any container may make.
    private static let allowed = """
        accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
        clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
        clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
        epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
        eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
        fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
        flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
        ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64
        getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername
        getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
        getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
        gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
        io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set
        io_setup io_submit io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule
        landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen
        listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier
        memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
        mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
        mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
        name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
        pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
        pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
        pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
        remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
        rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
        rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
        sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
        sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
        sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile
        sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
        setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32
        setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
        set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown
        sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64
        statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
        timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
        timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
        timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime
        utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
        """

    /// Calls only CAP_SYS_ADMIN unlocks: namespaces, mounts, bpf, perf, host identity.
    private static let sysAdmin = """
        bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr
        move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog
        umount umount2 unshare
        """
}
