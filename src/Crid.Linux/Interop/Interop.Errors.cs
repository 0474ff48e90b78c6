using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>
/// The one way a failed call becomes an exception (dotnet/runtime's Interop.CheckIo is the model):
/// errno is read first, in the failure branch, before anything else can run a P/Invoke that
/// overwrites it, and the exception names the syscall, the path and the errno.
/// </summary>
internal static partial class Interop
{
    /// <summary>Returns <paramref name="result"/>, or throws for the errno of the call that just returned it.</summary>
    internal static int CheckIo(int result, string syscall, string? path = null, string? step = null, string? type = null)
        => result < 0 ? throw Error(syscall, path, step, type) : result;

    /// <inheritdoc cref="CheckIo(int, string, string?, string?, string?)"/>
    internal static long CheckIo(long result, string syscall, string? path = null, string? step = null, string? type = null)
        => result < 0 ? throw Error(syscall, path, step, type) : result;

    /// <summary>The exception for the P/Invoke that just failed: call it first in the failure branch.</summary>
    internal static SyscallException Error(string syscall, string? path = null, string? step = null, string? type = null)
        => new(Marshal.GetLastPInvokeError(), syscall, path, step, type);

    /// <summary>The exception for an errno the caller already holds (read first, or returned, as posix_spawn does).</summary>
    internal static SyscallException Error(int errno, string syscall, string? path = null, string? step = null, string? type = null)
        => new(errno, syscall, path, step, type);

    /// <summary>errno of the P/Invoke that just returned (Tmds.LibC's calls and ours all set it).</summary>
    internal static int LastErrno => Marshal.GetLastPInvokeError();

    /// <summary>
    /// The symbolic name of an errno. Tmds.LibC has the values as properties, which a switch cannot
    /// use, and glibc's strerrorname_np is a GNU extension: the names we meet are listed here.
    /// </summary>
    internal static string ErrnoName(int errno) => errno switch
    {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        6 => "ENXIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        10 => "ECHILD",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        19 => "ENODEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        25 => "ENOTTY",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        31 => "EMLINK",
        32 => "EPIPE",
        34 => "ERANGE",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        61 => "ENODATA",
        75 => "EOVERFLOW",
        87 => "EUSERS",
        95 => "ENOTSUP",
        122 => "EDQUOT",
        _ => "errno " + errno.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
