using Crid.Linux;

namespace Crid.Linux.Tests;

internal static class NsTestInterop
{
    /// <summary>Inode of the user namespace owning the namespace at <paramref name="path"/> (ioctl NS_GET_USERNS).</summary>
    public static ulong OwnerUserNsInode(string path)
    {
        using SafeFd fd = Interop.Open(path, Interop.O_RDONLY | Interop.O_CLOEXEC, 0);
        Assert.False(fd.IsInvalid, "open " + path);
        int owner = Interop.IoctlNoArg(fd, Interop.NS_GET_USERNS);
        Assert.True(owner >= 0, "ioctl NS_GET_USERNS " + path);
        using var ownerFd = new SafeFd();
        System.Runtime.InteropServices.Marshal.InitHandle(ownerFd, owner);
        return NsFiles.Inode($"/proc/self/fd/{owner}");
    }
}
