using System.Diagnostics;
using Crid.Core.Errors;
using Crid.Images.Tests.Support;

namespace Crid.Images.Tests;

/// <summary>A pull into a store whose disk fills up: a small tmpfs of the test's own, unmounted after.</summary>
public sealed class DiskFullTests
{
    [Fact]
    public async Task A_full_disk_fails_the_pull_clearly_and_leaves_no_half_layer()
    {
        Assert.True(TestHost.IsRoot, "mounting the small tmpfs needs root (CI runs as root)");
        await using var registry = await FakeRegistry.StartAsync();
        var big = new byte[3 << 20];
        new Random(3).NextBytes(big);
        var image = TestImage.Build([TestImage.Layer(new TarBuilder().File("big", big).Build())]);
        registry.Add("big", "latest", image);
        using var h = new PullHarness();
        var mount = Path.Combine(h.Dir, "images", "snapshots");
        Run("mount", "-t", "tmpfs", "-o", "size=1m", "crid-test", mount);
        try
        {
            var e = await Assert.ThrowsAsync<RuntimeFailureException>(() => h.PullAsync($"{registry.Host}/big"));
            Assert.Matches("ENOSPC|No space left", e.Message);
            Assert.Empty(h.Store.Current.Images);
            Assert.Empty(h.Store.Current.Layers);
            Assert.Empty(Directory.GetFileSystemEntries(mount));
        }
        finally
        {
            Run("umount", mount);
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
