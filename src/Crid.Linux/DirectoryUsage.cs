using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Crid.Linux;

/// <summary>What a folder tree holds on disk.</summary>
/// <param name="Bytes">Allocated bytes (st_blocks × 512, as du(1) counts), each inode once.</param>
/// <param name="Inodes">Distinct inodes, the folder itself included; a hard-linked file counts once.</param>
/// <param name="Truncated">The walk stopped at its entry or depth bound: the figures are a lower bound.</param>
public readonly record struct DiskUsage(ulong Bytes, ulong Inodes, bool Truncated)
{
    /// <summary>The walked folder's device (statx's stx_dev): the filesystem every counted entry is on.</summary>
    public (uint Major, uint Minor) Device { get; init; }
}

/// <summary>
/// du(1) of a folder whose contents someone else controls (a container's writable layer), walked
/// by descriptor: every folder is opened with openat(O_NOFOLLOW | O_DIRECTORY) relative to its
/// parent's descriptor and checked to be the inode that was listed, so a link, or a folder swapped
/// for a link while the walk runs, never leads the walk out of the tree. The walk stays on the
/// tree's filesystem (what is mounted inside it is not counted, as <c>du -x</c>) and is bounded in
/// entries and depth, so a layer with millions of files costs a bounded amount of work.
/// </summary>
public static unsafe class DirectoryUsage
{
    private static readonly uint Mask = STATX_TYPE | STATX_INO | STATX_NLINK | STATX_BLOCKS;

    /// <summary>Measures <paramref name="root"/> (not following it if it is a link).</summary>
    /// <param name="maxEntries">entries looked at before the walk stops (Truncated).</param>
    /// <param name="maxDepth">folder levels below the root that are entered; deeper ones are not (Truncated).</param>
    /// <exception cref="DirectoryNotFoundException">the root does not exist.</exception>
    /// <exception cref="IOException">the root is not a folder or cannot be read.</exception>
    public static DiskUsage Measure(string root, int maxEntries, int maxDepth)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxEntries);
        ArgumentOutOfRangeException.ThrowIfNegative(maxDepth);
        var fd = OpenAt(AT_FDCWD, root);
        if (fd < 0)
        {
            var errno = LibC.errno;
            if (errno == ENOENT)
                throw new DirectoryNotFoundException($"open {root}: ENOENT");
            throw new IOException($"open {root}: {Interop.ErrnoName(errno)}");
        }
        statx st;
        var empty = (byte)0;
        if (statx(fd, &empty, AT_EMPTY_PATH, Mask, &st) != 0)
        {
            var errno = LibC.errno;
            close(fd);
            throw new IOException($"statx {root}: {Interop.ErrnoName(errno)}");
        }
        var walk = new Walk(st.stx_dev_major, st.stx_dev_minor, maxEntries, maxDepth);
        walk.Count(st);
        walk.Folder(fd, root, 0);
        return new DiskUsage(walk.Bytes, walk.Inodes, walk.Truncated) { Device = (st.stx_dev_major, st.stx_dev_minor) };
    }

    private static int OpenAt(int dirFd, string name)
    {
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* p = bytes)
            return openat(dirFd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0);
    }

    private sealed class Walk(uint devMajor, uint devMinor, int maxEntries, int maxDepth)
    {
        private readonly HashSet<ulong> _linked = [];
        private int _entries;

        public ulong Bytes { get; private set; }

        public ulong Inodes { get; private set; }

        public bool Truncated { get; private set; }

        public void Count(in statx st)
        {
            // A file with more than one name is counted at the first of them (du's rule); folders
            // cannot be hard-linked, their link count is their subfolders.
            if ((st.stx_mode & 0xF000) != 0x4000 && st.stx_nlink > 1 && !_linked.Add(st.stx_ino))
                return;
            Bytes += st.stx_blocks * 512;
            Inodes++;
        }

        /// <summary>Counts what the folder open at <paramref name="fd"/> holds; takes ownership of the descriptor.</summary>
        public void Folder(int fd, string path, int depth)
        {
            var dir = Interop.FdOpenDir(fd);
            if (dir == 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                close(fd);
                throw new IOException($"fdopendir {path}: {Interop.ErrnoName(errno)}");
            }
            try
            {
                while (true)
                {
                    var entry = Interop.ReadDir(dir);
                    if (entry is null)
                    {
                        var errno = Marshal.GetLastPInvokeError();
                        if (errno != 0)
                            throw new IOException($"readdir {path}: {Interop.ErrnoName(errno)}");
                        return;
                    }
                    var name = entry + Interop.DirentNameOffset;
                    if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))
                        continue;
                    if (_entries >= maxEntries)
                    {
                        Truncated = true;
                        return;
                    }
                    _entries++;
                    Entry(Interop.DirFd(dir), name, path, depth);
                }
            }
            finally
            {
                Interop.CloseDir(dir);
            }
        }

        private void Entry(int dirFd, byte* name, string parent, int depth)
        {
            statx st;
            if (statx(dirFd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, Mask, &st) != 0)
            {
                // Deleted since it was listed: the container is still writing, nothing to count.
                if (LibC.errno == ENOENT)
                    return;
                throw new IOException($"statx {parent}/{Marshal.PtrToStringUTF8((nint)name)}: {Interop.ErrnoName(LibC.errno)}");
            }
            // Another filesystem mounted inside the tree is not the tree's usage.
            if (st.stx_dev_major != devMajor || st.stx_dev_minor != devMinor)
                return;
            Count(st);
            if ((st.stx_mode & 0xF000) != 0x4000)
                return;
            if (depth >= maxDepth)
            {
                Truncated = true;
                return;
            }
            var fd = openat(dirFd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0);
            if (fd < 0)
            {
                // Gone, or swapped for a link or a file since the statx: not a folder of the tree any more.
                var errno = LibC.errno;
                if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
                    return;
                throw new IOException($"open {parent}/{Marshal.PtrToStringUTF8((nint)name)}: {Interop.ErrnoName(errno)}");
            }
            statx opened;
            var empty = (byte)0;
            if (statx(fd, &empty, AT_EMPTY_PATH, Mask, &opened) != 0 || opened.stx_ino != st.stx_ino
                || opened.stx_dev_major != devMajor || opened.stx_dev_minor != devMinor)
            {
                // Replaced by another folder between the statx and the open: skip rather than count
                // something that was not listed here.
                close(fd);
                return;
            }
            Folder(fd, parent + "/" + Marshal.PtrToStringUTF8((nint)name), depth + 1);
        }
    }
}
