namespace Crid.Linux;

/// <summary>
/// A Linux system call failed. The message names what the call was doing (when the caller said),
/// the syscall, the path and the errno's symbolic name, as
/// <c>sysctl (net namespace): open /proc/sys/net/x: ENOENT: No such file or directory</c>.
/// Built only by <see cref="Interop.CheckIo(int, string, string?, string?, string?)"/> and its siblings.
/// </summary>
public class SyscallException : IOException
{
    internal SyscallException(int errno, string syscall, string? path, string? step, string? namespaceType)
        : base(Format(errno, syscall, path, step, namespaceType))
    {
        Errno = errno;
        Syscall = syscall;
        Path = path;
        Step = step;
        NamespaceType = namespaceType;
        HResult = errno;
    }

    /// <summary>A refusal with a message of its own (see <see cref="UnsafePathException"/>).</summary>
    internal SyscallException(string message, int errno, string syscall, string? path)
        : base(message)
    {
        Errno = errno;
        Syscall = syscall;
        Path = path;
        HResult = errno;
    }

    public int Errno { get; }

    /// <summary>"EINVAL", "ENOENT", ...; "errno N" for a number without a name here.</summary>
    public string ErrnoName => Interop.ErrnoName(Errno);

    /// <summary>"open", "mount", "setns", ...; "write (short)" when the kernel took only part of a value.</summary>
    public string Syscall { get; }

    public string? Path { get; }

    /// <summary>What the call was doing, e.g. "bind mount", "sysctl", "uid_map"; null when the syscall says it all.</summary>
    public string? Step { get; }

    /// <summary>"net", "ipc", "uts", "user" or "pid" when the step concerns one namespace type.</summary>
    public string? NamespaceType { get; }

    private static string Format(int errno, string syscall, string? path, string? step, string? type)
    {
        string where = path is null ? syscall : $"{syscall} {path}";
        string what = step is null ? "" : type is null ? $"{step}: " : $"{step} ({type} namespace): ";
        return $"{what}{where}: {Interop.ErrnoName(errno)}: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno)}";
    }
}

/// <summary>
/// A path would have been resolved through a symbolic link or out of the folder it must stay in: the
/// kernel (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) refused to walk it.
/// </summary>
public sealed class UnsafePathException : SyscallException
{
    internal UnsafePathException(string message, int errno, string path)
        : base(message, errno, "openat2", path)
    {
    }
}

/// <summary>A sysctl refused by a rule, before anything touches the kernel.</summary>
public sealed class SysctlRejectedException : ArgumentException
{
    internal SysctlRejectedException(string name, string rule)
        : base($"sysctl \"{name}\" rejected: {rule}")
    {
        Name = name;
        Rule = rule;
    }

    public string Name { get; }

    public string Rule { get; }
}
