using System.Runtime.InteropServices;

namespace Crid.Linux;

internal static unsafe partial class Interop
{
    internal const int SIGKILL = 9, SIGCHLD = 17;
    internal const short POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSID = 0x80;

    // Opaque glibc structures; sizes with headroom (x86_64: attr 336, file_actions 80, sigset 128).
    internal const int SpawnAttrSize = 512, SpawnFileActionsSize = 256, SigsetSize = 128;

    [LibraryImport(Libc, EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int sig);

    [LibraryImport(Libc, EntryPoint = "waitpid", SetLastError = true)]
    internal static partial int Waitpid(int pid, int* status, int options);

    [LibraryImport(Libc, EntryPoint = "_exit")]
    internal static partial void Exit(int status);

    // posix_spawn* return the error number instead of setting errno.
    [LibraryImport(Libc, EntryPoint = "posix_spawn")]
    internal static partial int PosixSpawn(int* pid, byte* path, void* fileActions, void* attr, byte** argv, byte** envp);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_init")]
    internal static partial int PosixSpawnattrInit(void* attr);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_destroy")]
    internal static partial int PosixSpawnattrDestroy(void* attr);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setflags")]
    internal static partial int PosixSpawnattrSetflags(void* attr, short flags);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setsigdefault")]
    internal static partial int PosixSpawnattrSetsigdefault(void* attr, void* sigset);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setsigmask")]
    internal static partial int PosixSpawnattrSetsigmask(void* attr, void* sigset);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_init")]
    internal static partial int PosixSpawnFileActionsInit(void* actions);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_destroy")]
    internal static partial int PosixSpawnFileActionsDestroy(void* actions);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addopen")]
    internal static partial int PosixSpawnFileActionsAddopen(void* actions, int fd, byte* path, int oflag, uint mode);

    internal const int SIG_SETMASK = 2;

    // No SetLastError: it must not overwrite the errno of the clone() it brackets.
    [LibraryImport(Libc, EntryPoint = "pthread_sigmask")]
    internal static partial int PthreadSigmask(int how, void* set, void* oldset);

    [LibraryImport(Libc, EntryPoint = "sigfillset")]
    internal static partial int Sigfillset(void* set);

    [LibraryImport(Libc, EntryPoint = "sigemptyset")]
    internal static partial int Sigemptyset(void* set);
}
