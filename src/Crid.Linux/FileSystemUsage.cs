namespace Crid.Linux;

/// <summary>How full the filesystem holding a path is, as statvfs(3) reports it, and where it is mounted.</summary>
public sealed record FileSystemUsage(string MountPoint, ulong UsedBytes, ulong UsedInodes)
{
    public static FileSystemUsage Of(string path)
    {
        Interop.CheckIo(Interop.StatVfs(path, out var st), "statvfs", path);
        ulong blocks = st.f_blocks, free = st.f_bfree, files = st.f_files, freeFiles = st.f_ffree, fragment = st.f_frsize;
        return new FileSystemUsage(MountPointOf(path), (blocks - free) * fragment, files - freeFiles);
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
