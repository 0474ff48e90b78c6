using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>
/// A pod's /dev/shm: one tmpfs per sandbox, mounted on the host and bound into each of its
/// containers, so they share POSIX shared memory as the pod's ipc namespace promises (containerd
/// and cri-o do the same; a tmpfs per container would not be shared).
/// </summary>
public static unsafe class PodShm
{
    private const ulong MS_NOSUID = 0x2, MS_NODEV = 0x4, MS_NOEXEC = 0x8;

    /// <summary>The size docker, containerd and cri-o give a pod's /dev/shm by default.</summary>
    public const long DefaultSizeBytes = 64L * 1024 * 1024;

    public static void Mount(string target, long sizeBytes = DefaultSizeBytes)
    {
        Directory.CreateDirectory(target);
        var data = Marshal.StringToCoTaskMemUTF8($"mode=1777,size={sizeBytes}");
        try
        {
            if (Interop.Mount("shm", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data) != 0)
                throw Errors.LastIo("mount tmpfs", target);
        }
        finally
        {
            Marshal.FreeCoTaskMem(data);
        }
    }

    /// <summary>Unmounts; "not mounted" (EINVAL) and "not there" (ENOENT) are success, so it is idempotent.</summary>
    public static void Unmount(string target)
    {
        if (Interop.Umount2(target, Interop.MNT_DETACH) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Interop.EINVAL && errno != Interop.ENOENT)
                throw new IOException($"umount2 {target}: {Interop.ErrnoName(errno)}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
    }
}
