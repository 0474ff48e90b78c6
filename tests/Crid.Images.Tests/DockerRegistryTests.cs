using Crid.Images.Tests.Support;

namespace Crid.Images.Tests;

/// <summary>Debian's docker-registry on 127.0.0.1 with images pushed by skopeo: the real distribution API.</summary>
public sealed class DockerRegistryTests : IAsyncLifetime
{
    private DockerRegistry _registry = null!;

    public async Task InitializeAsync() => _registry = await DockerRegistry.StartAsync();

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    [Fact]
    public async Task Busybox_multi_arch_with_a_zstd_layer_pulls_from_a_real_registry()
    {
        var base_ = TestImage.Layer(new TarBuilder().Busybox().Build(), Compression.Gzip);
        var extra = TestImage.Layer(new TarBuilder().Dir("data/").File("data/x", "zstd layer").HardLink("data/y", "data/x")
            .File("data/attr", "a", pax: new Dictionary<string, string> { ["SCHILY.xattr.user.note"] = "hi" }).File("etc/.wh.group", "").Build(), Compression.Zstd);
        var image = TestImage.Build([base_, extra], user: "1002", multiArch: true);
        await _registry.PushAsync(image, "library/busybox:1.36");

        using var h = new PullHarness([new Core.Configuration.RegistryEntry { Prefix = "docker.io", Location = _registry.Host, Insecure = true }]);
        var id = await h.PullAsync("busybox:1.36");
        Assert.Equal(image.ConfigDigest, id);
        var stored = h.Store.Lookup("docker.io/library/busybox:1.36")!;
        Assert.Equal(["docker.io/library/busybox:1.36"], stored.RepoTags);
        Assert.Equal([$"docker.io/library/busybox@{image.TopDigest}"], stored.RepoDigests);
        Assert.Equal(File.ReadAllBytes(TestHost.Busybox), File.ReadAllBytes(Path.Combine(h.LayerFolder(stored, 0), "bin/busybox")));
        Assert.Equal("zstd layer", File.ReadAllText(Path.Combine(h.LayerFolder(stored, 1), "data/y")));
        Assert.Equal("1002", h.Store.Find("busybox:1.36")!.Config.User);
        // Pulled again: nothing is fetched, the same image comes back. distribution answers the
        // conditional request 304 for the tag and for the digest.
        foreach (var name in new[] { "docker.io/library/busybox:1.36", $"busybox@{image.TopDigest}" })
        {
            h.Sent.Clear();
            Assert.Equal(id, await h.PullAsync(name));
            Assert.Equal(($"\"{image.TopDigest}\"", 304), Assert.Single(h.Sent.Select(r => (r.IfNoneMatch, r.Status))));
        }
        Assert.Equal(2, h.Store.Current.Layers.Count);
        Assert.True(h.Store.Remove(id));
        h.AssertEmpty();
    }
}
