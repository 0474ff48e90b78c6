using System.Runtime.InteropServices;

namespace Crid.Linux;

internal static unsafe partial class Interop
{
    internal const int CLONE_NEWNS = 0x00020000, CLONE_NEWUTS = 0x04000000, CLONE_NEWIPC = 0x08000000,
        CLONE_NEWUSER = 0x10000000, CLONE_NEWPID = 0x20000000, CLONE_NEWNET = 0x40000000;

    internal const ulong MS_BIND = 0x1000;
    internal const int MNT_DETACH = 2;
    internal const long NSFS_MAGIC = 0x6e736673;

    // NS_GET_USERNS = _IO(0xb7, 0x1): returns an fd of the user namespace owning a namespace.
    internal const nuint NS_GET_USERNS = 0xb701;

    // clone(2)'s glibc wrapper: int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...).
    // The trailing varargs (ptid, tls, ctid) are read straight from registers by the assembly
    // wrapper and are unused without CLONE_PARENT_SETTID/SETTLS/CHILD_SETTID.
    [LibraryImport(Libc, EntryPoint = "clone", SetLastError = true)]
    internal static partial int Clone(nint fn, void* stack, int flags, void* arg);

    [LibraryImport(Libc, EntryPoint = "setns", SetLastError = true)]
    internal static partial int Setns(SafeFd fd, int nstype);

    [LibraryImport(Libc, EntryPoint = "unshare", SetLastError = true)]
    internal static partial int Unshare(int flags);

    [LibraryImport(Libc, EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Mount(string source, string target, string? fstype, ulong flags, nint data);

    [LibraryImport(Libc, EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int Umount2(string target, int flags);

    [LibraryImport(Libc, EntryPoint = "sethostname", SetLastError = true)]
    internal static partial int Sethostname(byte* name, nint len);
}
