using System.Runtime.InteropServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

// File calls over Tmds.LibC: paths as UTF-8, descriptors as SafeHandles. Each returns what libc
// returned; on failure errno is the last P/Invoke error, for CheckIo.
internal static unsafe partial class Interop
{
    /// <summary>open(2); on failure the handle is invalid and errno is still the last P/Invoke error.</summary>
    internal static SafeFd Open(string path, int flags, uint mode = 0)
    {
        fixed (byte* p = Utf8Z(path))
        {
            return SafeFd.FromResult(open(p, flags, (mode_t)(ushort)mode));
        }
    }

    /// <summary>open(2), or the exception naming the path and errno.</summary>
    internal static SafeFd OpenChecked(string path, int flags, uint mode = 0, string? step = null, string? type = null)
    {
        SafeFd fd = Open(path, flags, mode);
        return fd.IsInvalid ? throw Error("open", path, step, type) : fd;
    }

    /// <summary>openat(2) relative to a folder's descriptor.</summary>
    internal static SafeFd OpenAt(SafeHandle dir, string path, int flags, uint mode = 0)
    {
        using var d = dir.Borrow();
        fixed (byte* p = Utf8Z(path))
        {
            return SafeFd.FromResult(openat(d.Fd, p, flags, (mode_t)(ushort)mode));
        }
    }

    internal static long Write(SafeHandle fd, ReadOnlySpan<byte> buffer)
    {
        using var f = fd.Borrow();
        fixed (byte* b = buffer)
        {
            return write(f.Fd, b, buffer.Length);
        }
    }

    internal static long Read(SafeHandle fd, Span<byte> buffer)
    {
        using var f = fd.Borrow();
        fixed (byte* b = buffer)
        {
            return read(f.Fd, b, buffer.Length);
        }
    }

    internal static int Rename(string from, string to)
    {
        fixed (byte* f = Utf8Z(from))
        fixed (byte* t = Utf8Z(to))
        {
            return RenameRaw(f, t);
        }
    }

    // rename(2), which Tmds.LibC 0.5 does not mirror.
    [LibraryImport(Libc, EntryPoint = "rename", SetLastError = true)]
    private static partial int RenameRaw(byte* from, byte* to);

    internal static int Mkdir(string path, uint mode)
    {
        fixed (byte* p = Utf8Z(path))
        {
            return mkdir(p, (mode_t)(ushort)mode);
        }
    }

    internal static int Unlink(string path)
    {
        fixed (byte* p = Utf8Z(path))
        {
            return unlink(p);
        }
    }

    internal static int FChown(SafeHandle fd, uint uid, uint gid)
    {
        using var f = fd.Borrow();
        return fchown(f.Fd, uid, gid);
    }

    /// <summary>lchown(2): an id of uint.MaxValue (-1) leaves that id unchanged.</summary>
    internal static int LChown(string path, uint uid, uint gid)
    {
        fixed (byte* p = Utf8Z(path))
        {
            return lchown(p, uid, gid);
        }
    }

    internal static int Fsync(SafeHandle fd)
    {
        using var f = fd.Borrow();
        return fsync(f.Fd);
    }

    /// <summary>statx(2) of a path; statx rather than stat: one layout on every architecture.</summary>
    internal static int Statx(string path, int flags, uint mask, out statx st)
    {
        fixed (byte* p = Utf8Z(path))
        fixed (statx* s = &st)
        {
            return statx(AT_FDCWD, p, flags, mask, s);
        }
    }

    /// <summary>statx(2) of an open descriptor (AT_EMPTY_PATH).</summary>
    internal static int Statx(SafeHandle fd, uint mask, out statx st)
    {
        using var f = fd.Borrow();
        byte empty = 0;
        fixed (statx* s = &st)
        {
            return statx(f.Fd, &empty, AT_EMPTY_PATH, mask, s);
        }
    }

    internal static int StatVfs(string path, out statvfs st)
    {
        fixed (byte* p = Utf8Z(path))
        fixed (statvfs* s = &st)
        {
            return statvfs(p, s);
        }
    }

    internal static int Ioctl(SafeHandle fd, int request, void* arg)
    {
        using var f = fd.Borrow();
        return ioctl(f.Fd, request, arg);
    }
}
