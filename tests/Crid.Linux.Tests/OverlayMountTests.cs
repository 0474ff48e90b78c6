using Crid.Linux;

namespace Crid.Linux.Tests;

/// <summary>The container rootfs overlay: layer order, the one-page option limit, idempotent unmount.</summary>
public sealed class OverlayMountTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-overlay-").FullName;

    public void Dispose()
    {
        OverlayMount.Unmount(Path.Combine(_dir, "rootfs"));
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void Sixty_layers_with_long_paths_mount_in_order_and_unmount()
    {
        // 60 absolute paths of ~130 bytes are ~8 KiB of lowerdir: twice the page mount(2) copies.
        var layers = new List<string>();
        for (var i = 0; i < 60; i++)
        {
            var layer = Path.Combine(_dir, "snapshots", new string('l', 100) + i.ToString("D3"), "fs");
            Directory.CreateDirectory(layer);
            File.WriteAllText(Path.Combine(layer, "who"), $"layer {i}");
            File.WriteAllText(Path.Combine(layer, $"only-{i}"), "");
            layers.Add(layer);
        }
        Assert.True(layers.Sum(l => l.Length + 1) > 4096);
        var rootfs = Directory.CreateDirectory(Path.Combine(_dir, "rootfs")).FullName;
        var upper = Directory.CreateDirectory(Path.Combine(_dir, "upper")).FullName;
        var work = Directory.CreateDirectory(Path.Combine(_dir, "work")).FullName;

        OverlayMount.Mount(rootfs, layers, upper, work, Path.Combine(_dir, "links"));

        Assert.True(OverlayMount.IsMounted(rootfs));
        Assert.False(OverlayMount.IsMounted(Path.Combine(_dir, "links")));
        // Top-most first: the first layer's file wins; every layer's own file shows.
        Assert.Equal("layer 0", File.ReadAllText(Path.Combine(rootfs, "who")));
        Assert.All(Enumerable.Range(0, 60), i => Assert.True(File.Exists(Path.Combine(rootfs, $"only-{i}"))));
        File.WriteAllText(Path.Combine(rootfs, "written"), "x");
        Assert.True(File.Exists(Path.Combine(upper, "written")));
        Assert.False(File.Exists(Path.Combine(layers[0], "written")));
        // The mount's own thread changed only its own working directory.
        Assert.NotEqual(Path.Combine(_dir, "links"), Directory.GetCurrentDirectory());

        OverlayMount.Unmount(rootfs);
        Assert.False(OverlayMount.IsMounted(rootfs));
        Assert.False(File.Exists(Path.Combine(rootfs, "who")));
        OverlayMount.Unmount(rootfs);
        OverlayMount.Unmount(Path.Combine(_dir, "never-made"));
    }

    [Fact]
    public void A_refused_mount_names_the_syscall_and_the_target()
    {
        var rootfs = Directory.CreateDirectory(Path.Combine(_dir, "rootfs")).FullName;
        var lower = Directory.CreateDirectory(Path.Combine(_dir, "lower")).FullName;
        // The work folder is missing: overlayfs refuses the mount.
        var e = Assert.ThrowsAny<IOException>(() => OverlayMount.Mount(rootfs, [lower], Directory.CreateDirectory(Path.Combine(_dir, "upper")).FullName,
            Path.Combine(_dir, "no-work"), Path.Combine(_dir, "links")));
        Assert.Contains("mount", e.Message);
        Assert.Contains(rootfs, e.Message);
        Assert.False(OverlayMount.IsMounted(rootfs));
        Assert.Throws<ArgumentException>(() => OverlayMount.Mount(rootfs, [lower + ",x"], lower, lower, Path.Combine(_dir, "l2")));
    }
}
