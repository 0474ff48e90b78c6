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
    public void A_few_short_layers_mount_by_their_own_paths_without_links()
    {
        var layers = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var layer = Directory.CreateDirectory(Path.Combine(_dir, "snapshots", i.ToString(), "fs")).FullName;
            File.WriteAllText(Path.Combine(layer, "who"), $"layer {i}");
            layers.Add(layer);
        }
        var rootfs = Directory.CreateDirectory(Path.Combine(_dir, "rootfs")).FullName;
        var upper = Directory.CreateDirectory(Path.Combine(_dir, "upper")).FullName;
        var work = Directory.CreateDirectory(Path.Combine(_dir, "work")).FullName;

        OverlayMount.Mount(rootfs, layers, upper, work, Path.Combine(_dir, "links"));

        Assert.True(OverlayMount.IsMounted(rootfs));
        Assert.Equal("layer 0", File.ReadAllText(Path.Combine(rootfs, "who")));
        Assert.False(Directory.Exists(Path.Combine(_dir, "links")));
        // The kernel's record of the mount names the layers themselves, top-most first.
        var entry = MountTable.OfSelf().Single(m => m.MountPoint == rootfs);
        Assert.Equal("overlay", entry.FsType);
        Assert.Contains("lowerdir=" + string.Join(':', layers) + ",", entry.SuperOptions);
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

    [Fact]
    public void Id_mapped_layers_show_the_images_owners_through_the_pods_mapping_and_stay_detached()
    {
        // A user namespace with a mapping, as a pod's pin is: a child of unshare(1) whose maps we write.
        using var holder = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("unshare", ["--user", "sleep", "60"]))!;
        try
        {
            var userns = $"/proc/{holder.Id}/ns/user";
            for (var i = 0; i < 100 && File.ReadAllText($"/proc/{holder.Id}/comm").Trim() != "sleep"; i++)
                Thread.Sleep(10);
            File.WriteAllText($"/proc/{holder.Id}/uid_map", "0 300000 65536\n");
            File.WriteAllText($"/proc/{holder.Id}/gid_map", "0 300000 65536\n");
            // 100 layers: their descriptor numbers keep the options short.
            var layers = new List<string>();
            for (var i = 0; i < 100; i++)
            {
                var layer = Directory.CreateDirectory(Path.Combine(_dir, "snapshots", i.ToString("D3"), "fs")).FullName;
                File.WriteAllText(Path.Combine(layer, $"only-{i}"), "");
                layers.Add(layer);
            }
            File.WriteAllText(Path.Combine(layers[0], "who"), "top");
            File.WriteAllText(Path.Combine(layers[1], "who"), "below");
            File.WriteAllText(Path.Combine(layers[1], "users"), "");
            HostFiles.SetOwner(Path.Combine(layers[1], "users"), 1000, 1001);
            var rootfs = Directory.CreateDirectory(Path.Combine(_dir, "rootfs")).FullName;
            var upper = Directory.CreateDirectory(Path.Combine(_dir, "upper")).FullName;
            var work = Directory.CreateDirectory(Path.Combine(_dir, "work")).FullName;

            OverlayMount.Mount(rootfs, layers, upper, work, Path.Combine(_dir, "links"), new OverlayIdMap(userns, 300000, 300000));

            Assert.True(OverlayMount.IsMounted(rootfs));
            Assert.Equal("top", File.ReadAllText(Path.Combine(rootfs, "who")));
            Assert.All(Enumerable.Range(0, 100), i => Assert.True(File.Exists(Path.Combine(rootfs, $"only-{i}"))));
            // Host root's files are the pod root's; 1000:1001 is the pod's 1000:1001; the layers are untouched.
            Assert.Equal("300000:300000", Owner(Path.Combine(rootfs, "who")));
            Assert.Equal("301000:301001", Owner(Path.Combine(rootfs, "users")));
            Assert.Equal("300000:300000", Owner(rootfs));
            Assert.Equal("0:0", Owner(Path.Combine(layers[0], "who")));
            File.WriteAllText(Path.Combine(rootfs, "who"), "changed");
            Assert.Equal("300000:300000", Owner(Path.Combine(upper, "who")));
            Assert.Equal("top", File.ReadAllText(Path.Combine(layers[0], "who")));
            // Nothing id-mapped is attached anywhere: only the overlay holds the clones.
            Assert.Equal(0, IdMappedMounts(_dir));
            Assert.False(Directory.Exists(Path.Combine(_dir, "links")));

            OverlayMount.Unmount(rootfs);
            Assert.False(OverlayMount.IsMounted(rootfs));
            Assert.Equal(0, IdMappedMounts(_dir));

            // A user namespace that is not there: the error names it, nothing is mounted.
            var e = Assert.ThrowsAny<IOException>(() => OverlayMount.Mount(rootfs, layers, upper, work, Path.Combine(_dir, "links"),
                new OverlayIdMap(Path.Combine(_dir, "no-userns"), 300000, 300000)));
            Assert.Contains("no-userns", e.Message);
            Assert.False(OverlayMount.IsMounted(rootfs));
        }
        finally
        {
            holder.Kill();
            holder.WaitForExit();
        }
    }

    /// <summary>Id-mapped mounts of anything under <paramref name="dir"/> (a clone's root names its source folder), attached anywhere.</summary>
    private static int IdMappedMounts(string dir) =>
        File.ReadLines("/proc/self/mountinfo").Count(l => l.Contains("idmapped", StringComparison.Ordinal) && l.Contains(dir, StringComparison.Ordinal));

    private static string Owner(string path)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u:%g", path]) { RedirectStandardOutput = true })!;
        var output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return output;
    }
}
