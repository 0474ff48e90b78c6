using System.Diagnostics;
using Crid.Linux;

namespace Crid.Linux.Tests;

/// <summary>Root check, temporary namespaces dirs and shell helpers shared by the tests.</summary>
internal static class TestHost
{
    public static void RequireRoot()
    {
        Assert.True(Environment.UserName == "root" || GetEuid() == 0,
            "Crid.Linux tests create real namespaces and mounts: run them as root (this VM and CI do).");
    }

    private static uint GetEuid() => uint.Parse(
        File.ReadLines("/proc/self/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[2],
        System.Globalization.CultureInfo.InvariantCulture);

    public static (int Code, string Out, string Err) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, err);
    }

    public static string Ok(string file, params string[] args)
    {
        var (code, output, err) = Run(file, args);
        Assert.True(code == 0, $"{file} {string.Join(' ', args)} exited {code}: {err}");
        return output.Trim();
    }

    /// <summary>Mount points under <paramref name="dir"/> from /proc/self/mountinfo (what findmnt reads).</summary>
    public static List<string> MountsUnder(string dir)
    {
        var result = new List<string>();
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            string target = line.Split(' ')[4].Replace("\\040", " ", StringComparison.Ordinal);
            if (target.StartsWith(dir + "/", StringComparison.Ordinal))
            {
                result.Add(target);
            }
        }

        return result;
    }

    public static ulong Inode(string path) => NsFiles.Inode(path);
}

/// <summary>A fresh temporary namespaces dir; disposing asserts nothing stays mounted under it.</summary>
internal sealed class TempNsDir : IDisposable
{
    public TempNsDir()
    {
        TestHost.RequireRoot();
        Path = Directory.CreateTempSubdirectory("crid-linux-").FullName;
    }

    public string Path { get; }

    public void Dispose()
    {
        var left = TestHost.MountsUnder(Path);

        // The same check as an operator would run it; findmnt exits 1 when nothing matches.
        string nsfs = TestHost.Run("findmnt", "-rn", "-t", "nsfs", "-o", "TARGET").Out;
        left.AddRange(nsfs.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(t => t.StartsWith(Path + "/", StringComparison.Ordinal) && !left.Contains(t)));
        foreach (string m in left)
        {
            TestHost.Run("umount", "-l", m);
        }

        Directory.Delete(Path, recursive: true);
        Assert.True(left.Count == 0, "mounts left under " + Path + ": " + string.Join(", ", left));
    }
}
