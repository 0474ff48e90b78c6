namespace Crid.Linux.Unpack;

/// <summary>A file operation inside a layer folder failed; the message names the syscall, the path and the errno.</summary>
public class LayerTreeException(string message, int errno) : IOException(message)
{
    public int Errno { get; } = errno;
}

/// <summary>
/// A path would have been resolved through a symbolic link or out of the layer folder: the kernel
/// (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) refused to walk it.
/// </summary>
public sealed class UnsafePathException(string message, int errno) : LayerTreeException(message, errno);
