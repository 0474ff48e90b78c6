using System.Runtime.InteropServices;
using System.Text;
using Crid.Linux.Unpack;

namespace Crid.Linux.Tests;

/// <summary>
/// An image VOLUME's content copied into its folder: everything the unpacker keeps is kept, symlinks
/// are copied and never followed, and a volume path that leads out of the rootfs copies nothing.
/// </summary>
public sealed class VolumeContentTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-volume-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [DllImport("libc", SetLastError = true)]
    private static extern nint lgetxattr(string path, string name, byte[]? value, nuint size);

    private static string? Xattr(string path, string name)
    {
        var value = new byte[256];
        var n = lgetxattr(path, name, value, (nuint)value.Length);
        return n < 0 ? null : Encoding.UTF8.GetString(value, 0, (int)n);
    }

    private string Folder(string name) => Directory.CreateDirectory(Path.Combine(_dir, name)).FullName;

    [Fact]
    public void Owners_modes_links_nodes_times_and_xattrs_are_kept()
    {
        var rootfs = Folder("rootfs");
        using (var tree = LayerTree.Open(rootfs))
        {
            tree.MakeDirectory("data", 0x1ED);
            tree.SetOwnerAndMode("data", 1000, 2000, 0x1E8 /* 0750 */, isSymlink: false);
            tree.SetXattr("data", "user.folder", "f"u8.ToArray());
            using (var f = tree.CreateFile("data/file"))
                f.Write("from the image"u8);
            tree.SetOwnerAndMode("data/file", 1, 2, 0x9ED /* 04755 */, isSymlink: false);
            tree.SetXattr("data/file", "user.file", "v"u8.ToArray());
            tree.SetTimes("data/file", DateTimeOffset.FromUnixTimeSeconds(1_000_000), DateTimeOffset.FromUnixTimeSeconds(1_000_000));
            tree.HardLink("data/same", "data/file");
            tree.Symlink("data/passwd", "/etc/passwd");
            tree.Symlink("data/up", "../../../../..");
            tree.SetOwnerAndMode("data/up", 7, 8, 0, isSymlink: true);
            tree.MakeNode("data/null", LayerTree.NodeKind.CharDevice, 0x1B6, 1, 3);
            tree.MakeNode("data/fifo", LayerTree.NodeKind.Fifo, 0x180, 0, 0);
            tree.MakeDirectory("data/sub/deeper", 0x1ED);
            using (var f = tree.CreateFile("data/sub/deeper/leaf"))
                f.Write("leaf"u8);
        }
        var volume = Folder("volume");

        Assert.True(VolumeContent.Copy(rootfs, "/data", volume));

        Assert.Equal(["fifo", "file", "null", "passwd", "same", "sub", "up"], Directory.EnumerateFileSystemEntries(volume).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        var top = Stat(volume);
        Assert.Equal((1000u, 2000u, 0x1E8u), (top.Uid, top.Gid, top.Mode & 0xFFF));
        Assert.Equal("f", Xattr(volume, "user.folder"));
        var file = Path.Combine(volume, "file");
        Assert.Equal("from the image", File.ReadAllText(file));
        var fileStat = Stat(file);
        Assert.Equal((1u, 2u, 0x9EDu), (fileStat.Uid, fileStat.Gid, fileStat.Mode & 0xFFF));
        Assert.Equal(1_000_000, new DateTimeOffset(File.GetLastWriteTimeUtc(file)).ToUnixTimeSeconds());
        Assert.Equal("v", Xattr(file, "user.file"));
        Assert.Equal(fileStat.Ino, Stat(Path.Combine(volume, "same")).Ino);
        Assert.Equal("/etc/passwd", new FileInfo(Path.Combine(volume, "passwd")).LinkTarget);
        Assert.Equal("../../../../..", new FileInfo(Path.Combine(volume, "up")).LinkTarget);
        var up = Stat(Path.Combine(volume, "up"));
        Assert.Equal((7u, 8u), (up.Uid, up.Gid));
        Assert.Equal(0x2000u, Stat(Path.Combine(volume, "null")).Mode & 0xF000);
        Assert.Equal(0x1000u, Stat(Path.Combine(volume, "fifo")).Mode & 0xF000);
        Assert.Equal("leaf", File.ReadAllText(Path.Combine(volume, "sub", "deeper", "leaf")));
        // The image's files are read, not moved.
        Assert.Equal("from the image", File.ReadAllText(Path.Combine(rootfs, "data", "file")));
    }

    [Theory]
    [InlineData("/")]
    [InlineData("../../")]
    [InlineData("../../../../../../..")]
    public void A_volume_that_is_a_link_to_the_root_copies_nothing(string target)
    {
        var rootfs = Folder("rootfs");
        using (var tree = LayerTree.Open(rootfs))
        {
            tree.Symlink("data", target);
            using var f = tree.CreateFile("etc-file");
            f.Write("rootfs"u8);
        }
        var volume = Folder("volume");
        Assert.False(VolumeContent.Copy(rootfs, "/data", volume));
        Assert.Empty(Directory.EnumerateFileSystemEntries(volume));
    }

    [Fact]
    public void A_link_out_of_the_rootfs_is_resolved_inside_it()
    {
        // A folder on the host, named by an absolute link in the image: the copy must never read it.
        var host = Folder("host-secret");
        File.WriteAllText(Path.Combine(host, "secret"), "host");
        var rootfs = Folder("rootfs");
        using (var tree = LayerTree.Open(rootfs))
        {
            tree.Symlink("absolute", host);
            tree.Symlink("relative", "../../../../../../.." + host);
            // The same path inside the rootfs: that is what the links mean in the container.
            tree.MakeDirectory(host.TrimStart('/'), 0x1ED);
            using var f = tree.CreateFile(host.TrimStart('/') + "/inside");
            f.Write("rootfs"u8);
        }
        foreach (var link in new[] { "/absolute", "/relative/", "/absolute/../../../../../../../absolute" })
        {
            var volume = Folder("volume" + link.Replace('/', '-'));
            Assert.True(VolumeContent.Copy(rootfs, link, volume), link);
            Assert.Equal(["inside"], Directory.EnumerateFileSystemEntries(volume).Select(Path.GetFileName));
        }
        var missing = Folder("missing");
        Assert.False(VolumeContent.Copy(rootfs, "/nothing/here", missing));
        File.WriteAllText(Path.Combine(rootfs, "plain"), "a file");
        Assert.False(VolumeContent.Copy(rootfs, "/plain", missing));
        Assert.Empty(Directory.EnumerateFileSystemEntries(missing));
        Assert.Equal("host", File.ReadAllText(Path.Combine(host, "secret")));
    }

    private readonly record struct Meta(uint Uid, uint Gid, uint Mode, ulong Ino);

    private static Meta Stat(string path)
    {
        // stat(1) -c: %u %g %f (raw mode, hex) %i; no symlink is followed.
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u %g %f %i", path]) { RedirectStandardOutput = true })!;
        var parts = p.StandardOutput.ReadToEnd().Trim().Split(' ');
        p.WaitForExit();
        return new Meta(uint.Parse(parts[0]), uint.Parse(parts[1]), Convert.ToUInt32(parts[2], 16), ulong.Parse(parts[3]));
    }
}
