using System.Text;

namespace Crid.Linux;

/// <summary>proc(5)'s /proc/self/mountinfo, the fields crid reads: the spec's propagation, the cgroup layout, cgroup folders.</summary>
public static class MountTable
{
    public readonly record struct Entry(string MountPoint, string Optional, string FsType, string SuperOptions);

    /// <summary>This process's mounts, in the kernel's order (a later mount at a point hides an earlier one).</summary>
    public static IEnumerable<Entry> OfSelf() => Parse(File.ReadLines("/proc/self/mountinfo"));

    public static IEnumerable<Entry> Parse(IEnumerable<string> lines)
    {
        foreach (var line in lines)
        {
            // 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (dash < 6 || fields.Length < dash + 4)
                continue;
            yield return new Entry(Unescape(fields[4]), string.Join(' ', fields[6..dash]), fields[dash + 1], fields[dash + 3]);
        }
    }

    /// <summary>Mount points escape space, tab, newline and backslash as \ooo octal.</summary>
    private static string Unescape(string s)
    {
        if (!s.Contains('\\'))
            return s;
        var bytes = new List<byte>();
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && IsOctal(s, i + 1))
            {
                bytes.Add(Convert.ToByte(s.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(s[i].ToString()));
            }
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    private static bool IsOctal(string s, int at) =>
        at + 3 <= s.Length && s.Substring(at, 3).All(c => c is >= '0' and <= '7');
}
