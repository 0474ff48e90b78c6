using System.Diagnostics;
using Crid.Images.Tests.Support;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>The image RPCs over the real daemon's socket, against registries on 127.0.0.1 only.</summary>
public sealed class ImageTests
{
    private static string Config(string dir, string registryHost)
    {
        var path = Path.Combine(dir, "images.yaml");
        // The remap the conformance kit uses: the prefix's own host is never contacted.
        File.WriteAllText(path, $"registries:\n  - {{prefix: registry.example.invalid, location: {registryHost}, insecure: true}}\npull-idle-timeout: 5\n");
        return path;
    }

    [Fact]
    public async Task Pull_status_list_fsinfo_and_remove_over_the_socket()
    {
        await using var registry = await DockerRegistry.StartAsync();
        var image = TestImage.Build([TestImage.Layer(new TarBuilder().Busybox().Build())], user: "www-data", multiArch: true);
        await registry.PushAsync(image, "e2e/busybox:1.0");
        var dir = Directory.CreateTempSubdirectory("crid-e2e-cfg-").FullName;
        try
        {
            await using var daemon = await DaemonProcess.StartAsync("--config", Config(dir, registry.Host));
            var c = daemon.Images;
            const string name = "registry.example.invalid/e2e/busybox:1.0";
            var pulled = await c.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = name } });
            Assert.Equal(image.ConfigDigest, pulled.ImageRef);

            var status = (await c.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = name }, Verbose = true })).Image;
            Assert.Equal([name], status.RepoTags);
            Assert.Equal([$"registry.example.invalid/e2e/busybox@{image.TopDigest}"], status.RepoDigests);
            Assert.Equal("www-data", status.Username);
            Assert.True(status.Size > 0);
            foreach (var other in new[] { pulled.ImageRef, pulled.ImageRef[7..19], status.RepoDigests[0] })
                Assert.Equal(status, (await c.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = other } })).Image);
            var verbose = await c.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = name }, Verbose = true });
            Assert.Contains("\"diff_ids\"", verbose.Info["info"]);

            var list = await c.ListImagesAsync(new ListImagesRequest());
            Assert.Equal(pulled.ImageRef, Assert.Single(list.Images).Id);
            Assert.Single((await c.ListImagesAsync(new ListImagesRequest { Filter = new ImageFilter { Image = new ImageSpec { Image = name } } })).Images);
            Assert.Empty((await c.ListImagesAsync(new ListImagesRequest { Filter = new ImageFilter { Image = new ImageSpec { Image = "registry.example.invalid/other:1" } } })).Images);

            var fs = await c.ImageFsInfoAsync(new ImageFsInfoRequest());
            Assert.True(fs.ImageFilesystems[0].UsedBytes.Value > (ulong)new FileInfo(TestHost.Busybox).Length);
            Assert.True(fs.ImageFilesystems[0].InodesUsed.Value > 5);

            var bad = await Assert.ThrowsAsync<RpcException>(() => c.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = "Bad/Name" } }).ResponseAsync);
            Assert.Equal(StatusCode.InvalidArgument, bad.StatusCode);
            Assert.StartsWith("image.image:", bad.Status.Detail);
            var missing = await Assert.ThrowsAsync<RpcException>(() => c.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = "registry.example.invalid/e2e/absent:1" } }).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, missing.StatusCode);

            await c.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = status.RepoDigests[0] } });
            Assert.Null((await c.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = name } })).Image);
            await c.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = name } });
            Assert.Empty((await c.ListImagesAsync(new ListImagesRequest())).Images);
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(daemon.StateDir, "images", "snapshots")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task A_daemon_killed_mid_pull_restarts_with_no_half_image_and_no_remains()
    {
        await using var registry = await FakeRegistry.StartAsync();
        var big = new byte[2 << 20];
        new Random(2).NextBytes(big);
        var image = TestImage.Build([TestImage.Layer(new TarBuilder().File("a", "small").Build()), TestImage.Layer(new TarBuilder().File("big", big).Build(), Compression.None)]);
        registry.Add("slow", "latest", image);
        var stalled = new TaskCompletionSource();
        using var stop = new CancellationTokenSource();
        registry.Intercept = async ctx =>
        {
            if (!ctx.Request.Path.Value!.Contains("/blobs/" + image.Layers[1].Digest))
                return false;
            // Half the big layer, then nothing until the test ends: the daemon is killed in between.
            ctx.Response.ContentLength = image.Layers[1].Blob.Length;
            await ctx.Response.Body.WriteAsync(image.Layers[1].Blob.AsMemory(0, image.Layers[1].Blob.Length / 2));
            await ctx.Response.Body.FlushAsync();
            stalled.TrySetResult();
            await Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { });
            return true;
        };
        var dir = Directory.CreateTempSubdirectory("crid-e2e-cfg-").FullName;
        try
        {
            await using var daemon = await DaemonProcess.StartAsync("--config", Config(dir, registry.Host));
            var pull = daemon.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = "registry.example.invalid/slow" } }).ResponseAsync;
            await stalled.Task.WaitAsync(TimeSpan.FromSeconds(20));
            var snapshots = Path.Combine(daemon.StateDir, "images", "snapshots");
            var deadline = Stopwatch.StartNew();
            while (!Directory.EnumerateFiles(snapshots, "big", SearchOption.AllDirectories).Any() && deadline.Elapsed < TimeSpan.FromSeconds(10))
                await Task.Delay(20);
            Assert.NotEmpty(Directory.GetDirectories(snapshots));
            await daemon.KillAsync();
            await Assert.ThrowsAsync<RpcException>(() => pull);
            stop.Cancel();
            registry.Intercept = null;

            await daemon.RestartAsync("--config", Config(dir, registry.Host));
            Assert.Empty((await daemon.Images.ListImagesAsync(new ListImagesRequest())).Images);
            Assert.Null((await daemon.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = "registry.example.invalid/slow" } })).Image);
            Assert.Empty(Directory.GetFileSystemEntries(snapshots));
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(daemon.StateDir, "images", "tmp")));
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(daemon.StateDir, "images", "blobs", "sha256")));
            Assert.Contains("left unfinished", daemon.Stderr);

            // And the same pull now completes.
            var id = (await daemon.Images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = "registry.example.invalid/slow" } })).ImageRef;
            Assert.Equal(image.ConfigDigest, id);
        }
        finally
        {
            stop.Cancel();
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task Crid_import_loads_an_archive_into_a_running_daemon()
    {
        await using var daemon = await DaemonProcess.StartAsync();
        var image = TestImage.Build([TestImage.Layer(new TarBuilder().Busybox().Build(), Compression.Zstd)]);
        var archive = TestArchives.OciArchive(daemon.Dir, image, "registry.example.invalid/offline/busybox:2");
        using var p = DaemonProcess.Launch(["import", archive, "--state-dir", daemon.StateDir, "--config", Path.Combine(daemon.Dir, "empty.yaml")]);
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, p.ExitCode);
        var status = (await daemon.Images.ImageStatusAsync(new ImageStatusRequest { Image = new ImageSpec { Image = "registry.example.invalid/offline/busybox:2" } })).Image;
        Assert.Equal(image.ConfigDigest, status?.Id);

        var junk = Path.Combine(daemon.Dir, "junk.tar");
        File.WriteAllText(junk, "not an archive");
        using var q = DaemonProcess.Launch(["import", junk, "--state-dir", daemon.StateDir, "--config", Path.Combine(daemon.Dir, "empty.yaml")]);
        Assert.True(q.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Equal(1, q.ExitCode);
    }
}
