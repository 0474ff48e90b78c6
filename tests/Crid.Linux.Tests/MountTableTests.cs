using System.Diagnostics;

namespace Crid.Linux.Tests;

/// <summary>mountinfo as the kernel writes it: octal escapes in mount points, UTF-8 names, and where a path is mounted.</summary>
public sealed class MountTableTests
{
    [Fact]
    public void Escaped_and_non_ascii_mount_points_parse_back_to_their_names()
    {
        var lines = new[]
        {
            @"36 35 98:0 / /mnt/with\040space rw,noatime shared:1 - ext4 /dev/root rw,errors=continue",
            "37 35 0:40 / /mnt/caf\u00e9 rw master:2 propagate_from:1 - tmpfs tmpfs rw,size=10k",
            @"38 35 0:41 / /mnt/back\134slash\011tab rw - tmpfs tmpfs rw",
            "garbage without a separator",
        };
        var parsed = MountTable.Parse(lines).ToList();
        Assert.Equal(["/mnt/with space", "/mnt/caf\u00e9", "/mnt/back\\slash\ttab"], parsed.Select(e => e.MountPoint));
        Assert.Equal(["shared:1", "master:2 propagate_from:1", ""], parsed.Select(e => e.Optional));
        Assert.Equal(("ext4", "rw,errors=continue"), (parsed[0].FsType, parsed[0].SuperOptions));
    }

    [Fact]
    public void A_path_under_a_mount_with_a_space_and_an_accent_is_found_on_it()
    {
        var dir = Directory.CreateTempSubdirectory("crid-mounts-").FullName;
        var point = Path.Combine(dir, "a b \u00e9t\u00e9");
        Directory.CreateDirectory(point);
        try
        {
            Run("mount", "-t", "tmpfs", "-o", "size=1m", "crid-test", point);
            Directory.CreateDirectory(Path.Combine(point, "inner"));
            File.WriteAllBytes(Path.Combine(point, "inner", "f"), new byte[64 * 1024]);
            var usage = FileSystemUsage.Of(Path.Combine(point, "inner"));
            Assert.Equal(point, usage.MountPoint);
            Assert.True(usage.UsedBytes >= 64 * 1024, $"{usage.UsedBytes} bytes used");
            Assert.NotEqual(point, FileSystemUsage.Of(dir).MountPoint);
        }
        finally
        {
            Run("umount", point);
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)}: {err}");
    }
}
