using System.Runtime.InteropServices;

namespace Crid.Linux;

// The posix_spawn pieces Tmds.LibC 0.5.0 lacks; the rest of spawning is in Interop.Process.cs.
internal static unsafe partial class Interop
{
    internal const short POSIX_SPAWN_SETPGROUP = 0x02;
    internal const int WNOHANG = 1;

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_adddup2")]
    internal static partial int PosixSpawnFileActionsAdddup2(void* actions, int fd, int newfd);

    // glibc 2.29+; runs in the child before exec, after the attribute steps (setsid, setpgid).
    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addchdir_np")]
    internal static partial int PosixSpawnFileActionsAddchdir(void* actions, byte* path);

    // glibc 2.34+: closes every descriptor from fd up in the child, whether close-on-exec or not.
    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addclosefrom_np")]
    internal static partial int PosixSpawnFileActionsAddclosefrom(void* actions, int from);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setpgroup")]
    internal static partial int PosixSpawnattrSetpgroup(void* attr, int pgroup);

    [LibraryImport(Libc, EntryPoint = "inotify_init1", SetLastError = true)]
    internal static partial int InotifyInit1(int flags);

    [LibraryImport(Libc, EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int InotifyAddWatch(SafeHandle fd, string path, uint mask);
}
