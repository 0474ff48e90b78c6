using System.Runtime.InteropServices;

namespace Crid.Linux;

/// <summary>How full the filesystem holding a path is, as statvfs(3) reports it, and where it is mounted.</summary>
public sealed record FileSystemUsage(string MountPoint, ulong UsedBytes, ulong UsedInodes)
{
    public static FileSystemUsage Of(string path)
    {
        if (StatVfs.statvfs(path, out var st) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"statvfs {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
        var used = (st.f_blocks - st.f_bfree) * st.f_frsize;
        var inodes = st.f_files - st.f_ffree;
        return new FileSystemUsage(MountPointOf(path), used, inodes);
    }

    /// <summary>The longest mount point in /proc/self/mountinfo that contains <paramref name="path"/>.</summary>
    internal static string MountPointOf(string path)
    {
        var full = Path.GetFullPath(path);
        var best = "/";
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // Field 5 is the mount point, with spaces and the like escaped as octal (proc(5)).
            var fields = line.Split(' ');
            if (fields.Length < 5)
                continue;
            var mount = UnescapeOctal(fields[4]);
            if (mount.Length > best.Length && (full == mount || full.StartsWith(mount + "/", StringComparison.Ordinal)))
                best = mount;
        }
        return best;
    }

    private static string UnescapeOctal(string s)
    {
        if (!s.Contains('\\'))
            return s;
        var sb = new System.Text.StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 3 < s.Length)
            {
                sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                sb.Append(s[i]);
            }
        }
        return sb.ToString();
    }
}

internal static partial class StatVfs
{
    [StructLayout(LayoutKind.Sequential)]
    internal struct Buffer
    {
        public ulong f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_favail, f_fsid, f_flag, f_namemax;
        private unsafe fixed int spare[6];
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int statvfs(string path, out Buffer buf);
}
