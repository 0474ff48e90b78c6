using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>A system call failed while creating, joining or removing a namespace.</summary>
public sealed class NamespaceException : Exception
{
    internal NamespaceException(string step, string? namespaceType, int errno, string syscall, string? path)
        : base(Format(step, namespaceType, errno, syscall, path))
    {
        Step = step;
        NamespaceType = namespaceType;
        Errno = errno;
        Syscall = syscall;
        Path = path;
    }

    /// <summary>What the call was doing, e.g. "bind mount", "sysctl", "uid_map".</summary>
    public string Step { get; }

    /// <summary>"net", "ipc", "uts", "user", "pid", or null when the step concerns no single type.</summary>
    public string? NamespaceType { get; }

    public int Errno { get; }

    public string ErrnoName => Interop.ErrnoName(Errno);

    public string Syscall { get; }

    public string? Path { get; }

    private static string Format(string step, string? type, int errno, string syscall, string? path)
    {
        string where = path is null ? syscall : $"{syscall} {path}";
        string ns = type is null ? "" : $" ({type} namespace)";
        return $"{step}{ns}: {where}: {Interop.ErrnoName(errno)}: {Marshal.GetPInvokeErrorMessage(errno)}";
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

internal static class Errors
{
    /// <summary>
    /// Builds the exception for the P/Invoke that just failed. errno is read here, first,
    /// so call it directly in the failure branch with nothing in between.
    /// </summary>
    internal static NamespaceException Last(string step, string? type, string syscall, string? path)
        => new(step, type, Marshal.GetLastPInvokeError(), syscall, path);

    internal static NamespaceException Of(int errno, string step, string? type, string syscall, string? path)
        => new(step, type, errno, syscall, path);

    /// <summary>The same, for file work that concerns no namespace: an IOException naming syscall, path and errno.</summary>
    internal static IOException LastIo(string syscall, string path)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{syscall} {path}: {Interop.ErrnoName(errno)}: {Marshal.GetPInvokeErrorMessage(errno)}");
    }
}
