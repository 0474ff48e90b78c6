using System.Runtime.InteropServices;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>
/// A small kernel-made file read again and again (a cgroup's <c>cpuacct.usage</c>,
/// <c>memory.stat</c>): opened once, then each <see cref="Read"/> is one pread(2) at offset 0, and
/// seq_file (cgroupfs and procfs files are seq_files) makes the text afresh for a read at offset 0.
/// That holds for the one-record files (a cgroup's <c>*.usage</c>, <c>*.current</c>, <c>memory.stat</c>,
/// <c>cpu.stat</c>, limits); not for cgroup.procs, whose task iterator does not start over (a second
/// read through the same descriptor gives nothing): read such a file by opening it each time.
/// </summary>
/// <remarks>
/// <para>
/// Why: ListContainerStats reads four cgroup files per container. Opened, read and closed each time,
/// 1,000 containers' files cost about 100 ms of system time on this kind of VM (most of it in
/// open and close: the path walk through cgroupfs, the open-file and seq_file set-up and teardown);
/// the same reads through kept descriptors cost about 25 ms, most of that the kernel formatting
/// memory.stat (docs/benchmark.md).
/// </para>
/// <para>
/// A removed cgroup (its container deleted) turns the kept descriptor's reads into ENODEV: the
/// descriptor is closed then and the path opened again once, which fails (ENOENT) while the
/// cgroup is gone. Nothing here stops the cgroup from being removed (rmdir of a cgroup only
/// waits for its tasks and children, not for open files). Descriptors are kept only within a
/// budget, half of RLIMIT_NOFILE's soft limit across all kept files (the daemon's other
/// descriptors and its children's need the rest); beyond it a read opens and closes the file
/// as before. Owners dispose the file when its cgroup's object is removed.
/// </para>
/// </remarks>
public sealed unsafe partial class RereadFile(string path) : IDisposable
{
    private static long s_kept;
    private static long s_budget = -1;

    private readonly byte[] _pathZ = Interop.Utf8Z(path)!;
    private readonly Lock _gate = new();
    private SafeFd? _fd;
    private bool _disposed;

    public string Path { get; } = path;

    /// <summary>Descriptors kept open by every RereadFile of the process.</summary>
    public static long Kept => Interlocked.Read(ref s_kept);

    /// <summary>The most descriptors kept at once; set by tests, else half of the soft RLIMIT_NOFILE.</summary>
    public static long Budget
    {
        get
        {
            var budget = Interlocked.Read(ref s_budget);
            if (budget < 0)
                Interlocked.CompareExchange(ref s_budget, budget = OpenFileLimit() / 2, -1);
            return Interlocked.Read(ref s_budget);
        }
        set => Interlocked.Exchange(ref s_budget, value);
    }

    /// <summary>Whether this file holds a descriptor now.</summary>
    public bool IsKept
    {
        get
        {
            lock (_gate)
                return _fd is not null;
        }
    }

    /// <summary>
    /// The file's content as it is now, into <paramref name="buffer"/>: its length, or -1 when the
    /// file is not there (not made yet, or its cgroup removed) or cannot be read. A file longer
    /// than the buffer fills it and the rest is not read: size the buffer for the file.
    /// </summary>
    public int Read(Span<byte> buffer)
    {
        lock (_gate)
        {
            if (_fd is { } kept)
            {
                var n = PRead(kept, buffer);
                if (n >= 0)
                    return n;
                // ENODEV (the cgroup was removed) or anything else: this descriptor is done; the
                // path may be there again (or still readable) through a new one.
                Drop();
            }
            if (_disposed)
                return -1;
            SafeFd fd;
            fixed (byte* p = _pathZ)
            {
                fd = SafeFd.FromResult(open(p, O_RDONLY | O_CLOEXEC));
            }
            if (fd.IsInvalid)
            {
                fd.Dispose();
                return -1;
            }
            var read = PRead(fd, buffer);
            if (read >= 0 && Interlocked.Increment(ref s_kept) <= Budget)
            {
                _fd = fd;
                return read;
            }
            if (read >= 0)
                Interlocked.Decrement(ref s_kept);
            fd.Dispose();
            return read;
        }
    }

    /// <summary>One pread at offset 0, then more only when the buffer came back full.</summary>
    private static int PRead(SafeFd fd, Span<byte> buffer)
    {
        using var f = fd.Borrow();
        var total = 0;
        fixed (byte* b = buffer)
        {
            while (total < buffer.Length)
            {
                long n;
                do
                    n = pread(f.Fd, b + total, buffer.Length - total, total);
                while (n < 0 && Marshal.GetLastPInvokeError() == EINTR);
                if (n < 0)
                    return -1;
                if (n == 0)
                    break;
                total += (int)n;
                // A short read is the end: seq_file fills what it is asked for, a regular file too.
                if (total < buffer.Length)
                    break;
            }
        }
        return total;
    }

    private void Drop()
    {
        if (_fd is null)
            return;
        _fd.Dispose();
        _fd = null;
        Interlocked.Decrement(ref s_kept);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            Drop();
        }
    }

    private static long OpenFileLimit()
    {
        RLimit limit;
        // RLIMIT_NOFILE; the .NET runtime raises the soft limit to the hard one when it starts.
        if (GetRLimit(7, &limit) != 0 || limit.Cur == 0)
            return 1024;
        return limit.Cur > int.MaxValue ? int.MaxValue : (long)limit.Cur;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Cur;
        public ulong Max;
    }

    // getrlimit(2), which Tmds.LibC 0.5 does not mirror.
    [LibraryImport(Interop.Libc, EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, RLimit* limit);
}
