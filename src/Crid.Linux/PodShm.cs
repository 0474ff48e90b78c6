using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// A pod's /dev/shm: one tmpfs per sandbox, mounted on the host and bound into each of its
/// containers, so they share POSIX shared memory as the pod's ipc namespace promises (containerd
/// and cri-o do the same; a tmpfs per container would not be shared).
/// </summary>
public static class PodShm
{
    /// <summary>The size docker, containerd and cri-o give a pod's /dev/shm by default.</summary>
    public const long DefaultSizeBytes = 64L * 1024 * 1024;

    /// <param name="owner">the host ids of a user-namespaced pod's root, who then owns the tmpfs (root:root inside, as without one); null: host root.</param>
    public static void Mount(string target, long sizeBytes = DefaultSizeBytes, (uint Uid, uint Gid)? owner = null)
    {
        Directory.CreateDirectory(target);
        var options = $"mode=1777,size={sizeBytes}" + (owner is { } o ? $",uid={o.Uid},gid={o.Gid}" : "");
        Interop.CheckIo(Interop.Mount("shm", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options), "mount tmpfs", target);
    }

    /// <summary>Unmounts; "not mounted" (EINVAL) and "not there" (ENOENT) are success, so it is idempotent.</summary>
    public static void Unmount(string target)
    {
        if (Interop.Umount2(target, MNT_DETACH) != 0 && Interop.LastErrno is var errno && errno != EINVAL && errno != ENOENT)
        {
            throw Interop.Error(errno, "umount2", target);
        }
    }
}
