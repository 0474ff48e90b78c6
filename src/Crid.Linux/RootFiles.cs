using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// Reads a file of a container's root filesystem as the container would see it: openat2(2) with
/// RESOLVE_IN_ROOT resolves every symlink and ".." as if the rootfs were "/", so an image whose
/// /etc/passwd links to the host's /etc/shadow reads the rootfs's own (or nothing), never the host's.
/// </summary>
public static unsafe class RootFiles
{
    // openat2 is 437 on every architecture (syscalls added since 5.1 share one number); Tmds.LibC 0.5
    // keeps its own constant internal.
    private const int NrOpenat2 = 437;

    /// <summary>
    /// The bytes of <paramref name="path"/> inside <paramref name="root"/>; null when it does not
    /// exist there or is not a regular file (a FIFO or device in an image layer must not block or
    /// feed the daemon).
    /// </summary>
    /// <exception cref="IOException">the root cannot be opened, the file is larger than <paramref name="maxBytes"/>, or a read failed.</exception>
    public static byte[]? Read(string root, string path, int maxBytes)
    {
        var rootFd = Open(AT_FDCWD, root, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
        if (rootFd < 0)
            throw new IOException($"open {root}: {Interop.ErrnoName(LibC.errno)}");
        try
        {
            var fd = Open(rootFd, path.TrimStart('/'), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
            if (fd < 0)
            {
                var errno = LibC.errno;
                // ELOOP: links that loop (followed inside the root, never out of it). ENXIO: a socket.
                if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == ENXIO)
                    return null;
                throw new IOException($"openat2 {root}/{path.TrimStart('/')}: {Interop.ErrnoName(errno)}");
            }
            try
            {
                return ReadRegular(fd, $"{root}/{path.TrimStart('/')}", maxBytes);
            }
            finally
            {
                close(fd);
            }
        }
        finally
        {
            close(rootFd);
        }
    }

    private static int Open(int dirFd, string path, int flags, ulong resolve)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        if (resolve == 0)
        {
            fixed (byte* p = bytes)
                return openat(dirFd, p, flags, 0);
        }
        var how = new open_how { flags = (ulong)flags, mode = 0, resolve = resolve };
        fixed (byte* p = bytes)
        {
            while (true)
            {
                // EAGAIN: RESOLVE_IN_ROOT lookups race with a rename somewhere and ask to be retried.
                var fd = (long)syscall(NrOpenat2, dirFd, p, &how, sizeof(open_how));
                if (fd >= 0 || LibC.errno != EAGAIN)
                    return (int)fd;
            }
        }
    }

    private static byte[]? ReadRegular(int fd, string name, int maxBytes)
    {
        statx st;
        var empty = (byte)0;
        if (statx(fd, &empty, AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &st) != 0)
            throw new IOException($"statx {name}: {Interop.ErrnoName(LibC.errno)}");
        if ((st.stx_mode & 0xF000) != 0x8000)
            return null;
        if (st.stx_size > (ulong)maxBytes)
            throw new IOException($"{name} is {st.stx_size} bytes, more than the {maxBytes} read for it");
        var buffer = new byte[(int)st.stx_size];
        var total = 0;
        while (total < buffer.Length)
        {
            long n;
            fixed (byte* b = &buffer[total])
                n = read(fd, b, (size_t)(buffer.Length - total));
            if (n < 0)
            {
                if (LibC.errno == EINTR)
                    continue;
                throw new IOException($"read {name}: {Interop.ErrnoName(LibC.errno)}");
            }
            if (n == 0)
                break;
            total += (int)n;
        }
        return total == buffer.Length ? buffer : buffer[..total];
    }
}
