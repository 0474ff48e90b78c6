using System.Runtime.InteropServices;

namespace Crid.Core.Oci;

/// <summary>
/// crid's RuntimeDefault seccomp profile: an allow-list in the manner of Docker's default, so it
/// blocks what Docker's blocks. Everything not listed fails with EPERM: kernel keyrings, module
/// loading, reboot, clock setting, mount and namespace creation, ptrace, BPF and perf unless the
/// container holds the capability that the kernel would check anyway, in which case the seccomp
/// rule steps aside (a container given CAP_SYS_ADMIN may sethostname, one without may not even try).
/// </summary>
public static class DefaultSeccomp
{
    private const uint Eperm = 1;
    private const uint Enosys = 38;

    // CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET (sched.h).
    private const ulong NamespaceFlags = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;

    private const ulong AfVsock = 40;

    /// <summary>Allowed to every container: files, memory, processes, signals, time, sockets, System V and POSIX IPC.</summary>
    private static readonly string[] Always =
    [
        // files and folders
        "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range", "creat", "dup",
        "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark",
        "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64",
        "fdatasync", "fgetxattr", "flistxattr", "flock", "fremovexattr", "fsetxattr", "fstat", "fstat64",
        "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd",
        "getdents", "getdents64", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
        "inotify_rm_watch", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listxattr", "llistxattr",
        "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "memfd_create", "mkdir", "mkdirat",
        "mknod", "mknodat", "newfstatat", "open", "openat", "openat2", "pread64", "preadv", "preadv2", "pwrite64",
        "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "removexattr", "rename",
        "renameat", "renameat2", "rmdir", "sendfile", "sendfile64", "setxattr", "splice", "stat", "stat64",
        "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee",
        "truncate", "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
        "utimes", "vmsplice", "write", "writev",
        // waiting on many files
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
        "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "io_cancel", "io_destroy", "io_getevents",
        "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit", "ioctl", "ioprio_get", "ioprio_set",
        "pipe", "pipe2", "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select", "_newselect",
        "signalfd", "signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
        "timerfd_settime64",
        // memory
        "brk", "madvise", "membarrier", "mincore", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
        "mremap", "msync", "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect",
        "remap_file_pages",
        // processes, identity, limits, scheduling
        "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "vfork", "getcpu", "getegid",
        "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
        "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32",
        "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "get_thread_area",
        "gettid", "getuid", "getuid32", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
        "pidfd_open", "pidfd_send_signal", "prctl", "prlimit64", "process_mrelease", "rseq", "sched_getaffinity",
        "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
        "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
        "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "setfsgid",
        "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
        "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
        "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "set_thread_area",
        "set_tid_address", "setuid", "setuid32", "sysinfo", "times", "ugetrlimit", "uname", "wait4", "waitid",
        "waitpid",
        // signals
        "alarm", "kill", "pause", "restart_syscall", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
        "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo", "sigaction", "sigaltstack", "signal", "sigpending", "sigprocmask", "sigreturn",
        "sigsuspend", "tgkill", "tkill",
        // time and waiting
        "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
        "clock_nanosleep_time64", "futex", "futex_time64", "futex_waitv", "gettimeofday", "nanosleep", "time",
        "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
        "timer_settime64",
        // sockets (socket(2) itself is below, without AF_VSOCK)
        "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen", "recv",
        "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg", "sendto",
        "setsockopt", "shutdown", "socketcall", "socketpair",
        // System V and POSIX IPC (namespaced by the pod's ipc namespace)
        "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
        "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl",
        "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget",
    ];

    /// <summary>Allowed only with a capability: the syscall is the capability's to begin with.</summary>
    private static readonly (string Capability, string[] Names)[] WithCapability =
    [
        ("CAP_SYS_ADMIN", ["bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
            "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree",
            "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog",
            "umount", "umount2", "unshare"]),
        ("CAP_SYS_BOOT", ["reboot"]),
        ("CAP_SYS_CHROOT", ["chroot"]),
        ("CAP_SYS_MODULE", ["delete_module", "init_module", "finit_module", "query_module"]),
        ("CAP_SYS_PACCT", ["acct"]),
        ("CAP_SYS_PTRACE", ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
        ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
        ("CAP_SYS_TIME", ["settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime", "clock_adjtime64"]),
        ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
        ("CAP_SYS_NICE", ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
        ("CAP_SYSLOG", ["syslog"]),
        ("CAP_DAC_READ_SEARCH", ["open_by_handle_at"]),
        ("CAP_BPF", ["bpf"]),
        ("CAP_PERFMON", ["perf_event_open"]),
    ];

    /// <summary>The profile for a container whose bounding set is <paramref name="capabilities"/>.</summary>
    public static LinuxSeccomp Build(IReadOnlyCollection<string> capabilities) => Build(capabilities, RuntimeInformation.OSArchitecture);

    internal static LinuxSeccomp Build(IReadOnlyCollection<string> capabilities, Architecture arch)
    {
        var has = capabilities.ToHashSet(StringComparer.Ordinal);
        var syscalls = new List<LinuxSyscall> { Allow(Always) };
        syscalls.AddRange(arch switch
        {
            Architecture.X64 or Architecture.X86 => [Allow(["arch_prctl"])],
            Architecture.Arm64 or Architecture.Arm => [Allow(["arm_fadvise64_64", "arm_sync_file_range", "breakpoint", "cacheflush", "set_tls"])],
            _ => [],
        });
        // personality(2): only the execution domains programs ask for on their own (PER_LINUX,
        // PER_LINUX32, UNAME26 with either, and the query 0xffffffff); others weaken ASLR and the like.
        foreach (var persona in new ulong[] { 0x0, 0x8, 0x20000, 0x20008, 0xffffffff })
            syscalls.Add(Allow(["personality"], new LinuxSeccompArg { Index = 0, Value = persona, Op = "SCMP_CMP_EQ" }));
        // AF_VSOCK sockets reach the host (or the hypervisor) past the pod's network namespace.
        syscalls.Add(Allow(["socket"], new LinuxSeccompArg { Index = 0, Value = AfVsock, Op = "SCMP_CMP_NE" }));

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (capability, list) in WithCapability)
        {
            if (has.Contains(capability))
                names.UnionWith(list);
        }
        if (names.Count > 0)
            syscalls.Add(Allow([.. names.Order(StringComparer.Ordinal)]));
        if (!has.Contains("CAP_SYS_ADMIN"))
        {
            // Threads and forks, but no new namespaces: clone's flags are its first argument on
            // x86 and arm (s390 swaps the first two, and is not a platform crid runs on).
            syscalls.Add(Allow(["clone"], new LinuxSeccompArg { Index = 0, Value = NamespaceFlags, ValueTwo = 0, Op = "SCMP_CMP_MASKED_EQ" }));
            // clone3 passes its flags in memory, where seccomp cannot look: ENOSYS makes libc fall back to clone.
            syscalls.Add(new LinuxSyscall { Names = ["clone3"], Action = "SCMP_ACT_ERRNO", ErrnoRet = Enosys });
        }
        return new LinuxSeccomp
        {
            DefaultAction = "SCMP_ACT_ERRNO",
            DefaultErrnoRet = Eperm,
            Architectures = arch switch
            {
                Architecture.X64 or Architecture.X86 => ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                Architecture.Arm64 or Architecture.Arm => ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                _ => null,
            },
            Syscalls = syscalls,
        };
    }

    private static LinuxSyscall Allow(string[] names, params LinuxSeccompArg[] args) =>
        new() { Names = [.. names], Action = "SCMP_ACT_ALLOW", Args = args.Length > 0 ? [.. args] : null };
}
