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
    /// <summary>
    /// The bytes of <paramref name="path"/> inside <paramref name="root"/>; null when it does not
    /// exist there or is not a regular file (a FIFO or device in an image layer must not block or
    /// feed the daemon).
    /// </summary>
    /// <exception cref="IOException">the root cannot be opened, the file is larger than <paramref name="maxBytes"/>, or a read failed.</exception>
    public static byte[]? Read(string root, string path, int maxBytes)
    {
        using var rootFd = Interop.OpenChecked(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        string relative = path.TrimStart('/');
        string name = $"{root}/{relative}";
        using var fd = OpenInRoot(rootFd, relative);
        if (fd.IsInvalid)
        {
            var error = Interop.Error("openat2", name);

            // ELOOP: links that loop (followed inside the root, never out of it). ENXIO: a socket.
            return error.Errno == ENOENT || error.Errno == ENOTDIR || error.Errno == ELOOP || error.Errno == ENXIO ? null : throw error;
        }

        Interop.CheckIo(Interop.Statx(fd, STATX_TYPE | STATX_SIZE, out var st), "statx", name);
        if ((st.stx_mode & 0xF000) != 0x8000 /* S_IFREG */)
        {
            return null;
        }

        if (st.stx_size > (ulong)maxBytes)
        {
            throw new IOException($"{name} is {st.stx_size} bytes, more than the {maxBytes} read for it");
        }

        var buffer = new byte[(int)st.stx_size];
        var total = 0;
        while (total < buffer.Length)
        {
            long n = Interop.Read(fd, buffer.AsSpan(total));
            if (n < 0 && Interop.LastErrno == EINTR)
            {
                continue;
            }

            Interop.CheckIo(n, "read", name);
            if (n == 0)
            {
                break;
            }

            total += (int)n;
        }

        return total == buffer.Length ? buffer : buffer[..total];
    }

    private static SafeFd OpenInRoot(SafeFd root, string relative)
    {
        var how = new open_how
        {
            flags = (ulong)(O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK),
            resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        using var dir = root.Borrow();
        fixed (byte* p = Interop.Utf8Z(relative))
        {
            while (true)
            {
                // EAGAIN: RESOLVE_IN_ROOT lookups race with a rename somewhere and ask to be retried.
                int fd = openat2(dir.Fd, p, &how, (size_t)(ulong)sizeof(open_how));
                if (fd >= 0 || Interop.LastErrno != EAGAIN)
                {
                    return SafeFd.FromResult(fd);
                }
            }
        }
    }
}
