using Crid.Linux;

namespace Crid.Linux.Tests;

internal static class NsTestInterop
{
    /// <summary>Inode of the user namespace owning the namespace at <paramref name="path"/> (ioctl NS_GET_USERNS).</summary>
    public static ulong OwnerUserNsInode(string path) => NsFiles.OwnerUserNamespace(path);
}
