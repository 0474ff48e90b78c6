using System.Runtime.InteropServices;
using System.Text;
using Crid.Images.Tests.Support;
using Crid.Images.Unpack;

namespace Crid.Images.Tests;

/// <summary>Layers applied to real folders: owners, devices and trusted.* xattrs need root (CI is root).</summary>
public sealed partial class UnpackTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-unpack-").FullName;
    private readonly string _outside;
    private string Layer => Path.Combine(_dir, "layer");

    public UnpackTests()
    {
        Assert.True(TestHost.IsRoot, "the unpack tests need root: chown, mknod and trusted.* xattrs (CI runs as root)");
        Directory.CreateDirectory(Layer);
        _outside = Path.Combine(_dir, "outside");
        Directory.CreateDirectory(_outside);
    }

    public void Dispose() => Directory.Delete(_dir, true);

    private LayerStats Unpack(byte[] tar, Compression c = Compression.None) =>
        LayerUnpacker.Unpack(new MemoryStream(TestImage.Layer(tar, c).Blob), Layer);

    [Theory]
    [InlineData(Compression.None)]
    [InlineData(Compression.Gzip)]
    [InlineData(Compression.Zstd)]
    public void A_layer_with_everything_comes_out_as_written(Compression compression)
    {
        var tar = new TarBuilder()
            .Dir("etc/", 0x1ED)
            .File("etc/motd", "hello\n", 0x1A4, uid: 1000, gid: 1001)
            .File("usr/bin/suid", "x", 0x9ED) // 04755: chown must come before chmod
            .File("xattr", "v", pax: new Dictionary<string, string> { ["SCHILY.xattr.user.crid"] = "value", ["SCHILY.xattr.trusted.overlay.opaque"] = "y" })
            .HardLink("etc/motd2", "etc/motd")
            .Symlink("bin", "usr/bin")
            .Symlink("abs", "/etc/passwd")
            .CharDevice("dev/null", 1, 3)
            .Fifo("run/fifo")
            .File(".wh.gone", "")
            .Dir("opaque/")
            .File("opaque/.wh..wh..opq", "")
            .Build();
        var expectedDiff = TestImage.Digest(tar);
        var layer = TestImage.Layer(tar, compression);
        var stats = LayerUnpacker.Unpack(new MemoryStream(layer.Blob), Layer);
        Assert.Equal(expectedDiff, stats.DiffId);
        Assert.Equal(layer.Digest, stats.CompressedDigest);
        Assert.Equal(layer.Blob.Length, stats.CompressedSize);

        Assert.Equal("hello\n", File.ReadAllText(P("etc/motd")));
        var st = Stat(P("etc/motd"));
        Assert.Equal((1000u, 1001u, 0x1A4u), (st.Uid, st.Gid, st.Mode & 0xFFF));
        Assert.Equal(new DateTimeOffset(2024, 1, 2, 3, 4, 5, TimeSpan.Zero), File.GetLastWriteTimeUtc(P("etc/motd")));
        Assert.Equal(new DateTimeOffset(2024, 1, 2, 3, 4, 5, TimeSpan.Zero), Directory.GetLastWriteTimeUtc(P("etc")));
        Assert.Equal(0x9EDu, Stat(P("usr/bin/suid")).Mode & 0xFFF);
        Assert.Equal(Stat(P("etc/motd")).Ino, Stat(P("etc/motd2")).Ino);
        Assert.Equal("usr/bin", new FileInfo(P("bin")).LinkTarget);
        Assert.Equal("/etc/passwd", new FileInfo(P("abs")).LinkTarget);
        var dev = Stat(P("dev/null"));
        Assert.Equal((0x2000u, 1u, 3u), (dev.Mode & 0xF000, dev.Major, dev.Minor));
        Assert.Equal(0x1000u, Stat(P("run/fifo")).Mode & 0xF000);
        var wh = Stat(P("gone"));
        Assert.Equal((0x2000u, 0u, 0u), (wh.Mode & 0xF000, wh.Major, wh.Minor));
        Assert.False(File.Exists(P(".wh.gone")));
        Assert.Equal("y", Xattr(P("opaque"), "trusted.overlay.opaque"));
        Assert.False(File.Exists(P("opaque/.wh..wh..opq")));
        Assert.Equal("value", Xattr(P("xattr"), "user.crid"));
        // A layer never sets overlayfs's own attributes itself.
        Assert.Null(Xattr(P("xattr"), "trusted.overlay.opaque"));
    }

    [Fact]
    public void Busybox_static_unpacks_and_runs()
    {
        Unpack(new TarBuilder().Busybox().Build(), Compression.Gzip);
        Assert.Equal(new FileInfo(TestHost.Busybox).Length, new FileInfo(P("bin/busybox")).Length);
        var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(P("bin/sh"), ["-c", "echo ok"]) { RedirectStandardOutput = true })!;
        Assert.Equal("ok", p.StandardOutput.ReadToEnd().Trim());
        p.WaitForExit();
    }

    [Fact]
    public void A_later_entry_replaces_an_earlier_one_of_any_kind()
    {
        Unpack(new TarBuilder().File("a", "file").Dir("a/").File("a/b", "x").File("c", "1").Symlink("c", "elsewhere").Dir("d/").File("d", "now a file").Build());
        Assert.True(Directory.Exists(P("a")));
        Assert.Equal("elsewhere", new FileInfo(P("c")).LinkTarget);
        Assert.Equal("now a file", File.ReadAllText(P("d")));
    }

    [Theory]
    [InlineData("dotdot", "climbs out")]
    [InlineData("absolute", "absolute path")]
    [InlineData("symlink-dir", "symbolic link")]
    [InlineData("symlink-abs-dir", "symbolic link")]
    [InlineData("hardlink-out", "climbs out")]
    [InlineData("hardlink-abs", "absolute path")]
    [InlineData("hardlink-through-symlink", "symbolic link")]
    [InlineData("hardlink-missing", "not in this layer")]
    [InlineData("not-a-tar", "not a valid tar")]
    public void Hostile_layers_are_refused_and_write_nothing_outside(string kind, string expected)
    {
        File.WriteAllText(Path.Combine(_outside, "secret"), "keep");
        var rel = Path.GetRelativePath(Layer, _outside);
        byte[] tar = kind switch
        {
            "dotdot" => new TarBuilder().File($"../outside/x", "pwned").Build(),
            "absolute" => new TarBuilder().File($"{_outside}/x", "pwned").Build(),
            "symlink-dir" => new TarBuilder().Symlink("link", rel).File("link/x", "pwned").Build(),
            "symlink-abs-dir" => new TarBuilder().Symlink("link", _outside).File("link/x", "pwned").Build(),
            "hardlink-out" => new TarBuilder().HardLink("h", $"../outside/secret").Build(),
            "hardlink-abs" => new TarBuilder().HardLink("h", $"{_outside}/secret").Build(),
            "hardlink-through-symlink" => new TarBuilder().Symlink("link", _outside).HardLink("h", "link/secret").Build(),
            "hardlink-missing" => new TarBuilder().HardLink("h", "nothing").Build(),
            _ => Encoding.UTF8.GetBytes(new string('x', 1024)),
        };
        var e = Assert.Throws<LayerException>(() => Unpack(tar));
        Assert.Contains(expected, e.Message);
        Assert.Equal(["secret"], Directory.GetFileSystemEntries(_outside).Select(Path.GetFileName));
        Assert.Equal("keep", File.ReadAllText(Path.Combine(_outside, "secret")));
        Assert.Equal(1u, Stat(Path.Combine(_outside, "secret")).Nlink);
    }

    [Fact]
    public void A_damaged_gzip_stream_is_refused()
    {
        var blob = TestImage.Layer(new TarBuilder().File("a", new string('a', 100000)).Build()).Blob;
        blob[blob.Length / 2] ^= 0xFF;
        Assert.Throws<LayerException>(() => LayerUnpacker.Unpack(new MemoryStream(blob), Layer));
    }

    private string P(string rel) => Path.Combine(Layer, rel);

    private record struct StatInfo(uint Mode, uint Uid, uint Gid, ulong Ino, uint Nlink, uint Major, uint Minor);

    private static unsafe StatInfo Stat(string path)
    {
        Statx st;
        if (StatxPath(-100, path, 0x100, 0x7ff, &st) != 0)
            throw new IOException($"statx {path}: {Marshal.GetLastPInvokeError()}");
        return new StatInfo(st.Mode, st.Uid, st.Gid, st.Ino, st.NLink, st.RdevMajor, st.RdevMinor);
    }

    private static unsafe string? Xattr(string path, string name)
    {
        var buf = new byte[256];
        fixed (byte* b = buf)
        {
            var n = LGetXattr(path, name, b, (nuint)buf.Length);
            return n < 0 ? null : Encoding.UTF8.GetString(buf, 0, (int)n);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct Statx
    {
        public uint Mask, BlkSize;
        public ulong Attributes;
        public uint NLink, Uid, Gid;
        public ushort Mode, Pad0;
        public ulong Ino, Size, Blocks, AttributesMask;
        public fixed byte Times[64];
        public uint RdevMajor, RdevMinor, DevMajor, DevMinor;
        public fixed byte Spare[112];
    }

    [LibraryImport("libc.so.6", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatxPath(int dirfd, string path, int flags, uint mask, Statx* buf);

    [LibraryImport("libc.so.6", EntryPoint = "lgetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial nint LGetXattr(string path, string name, byte* value, nuint size);
}
