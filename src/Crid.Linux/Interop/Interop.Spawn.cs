using System.Runtime.InteropServices;

namespace Crid.Linux;

// Tmds.LibC 0.5.0 has no posix_spawn family: these are ours. They return the error number instead
// of setting errno (posix_spawn(3)).
internal static unsafe partial class Interop
{
    internal const short POSIX_SPAWN_SETPGROUP = 0x02, POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08,
        POSIX_SPAWN_SETSID = 0x80;

    // Opaque glibc structures; sizes with headroom (x86_64: attr 336, file_actions 80).
    internal const int SpawnAttrSize = 512, SpawnFileActionsSize = 256;

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

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setpgroup")]
    internal static partial int PosixSpawnattrSetpgroup(void* attr, int pgroup);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_init")]
    internal static partial int PosixSpawnFileActionsInit(void* actions);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_destroy")]
    internal static partial int PosixSpawnFileActionsDestroy(void* actions);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addopen")]
    internal static partial int PosixSpawnFileActionsAddopen(void* actions, int fd, byte* path, int oflag, uint mode);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_adddup2")]
    internal static partial int PosixSpawnFileActionsAdddup2(void* actions, int fd, int newfd);

    // glibc 2.29+; runs in the child before exec, after the attribute steps (setsid, setpgid).
    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addchdir_np")]
    internal static partial int PosixSpawnFileActionsAddchdir(void* actions, byte* path);

    // glibc 2.34+: closes every descriptor from fd up in the child, whether close-on-exec or not.
    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addclosefrom_np")]
    internal static partial int PosixSpawnFileActionsAddclosefrom(void* actions, int from);
}
