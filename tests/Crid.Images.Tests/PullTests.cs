using System.Text;
using Crid.Core.Configuration;
using Crid.Core.Errors;
using Crid.Images.Registry;
using Crid.Images.Tests.Support;
using Microsoft.AspNetCore.Http;

namespace Crid.Images.Tests;

/// <summary>Pulls from a registry of the test's own on 127.0.0.1, behaving well and badly.</summary>
public sealed class PullTests : IAsyncLifetime
{
    private FakeRegistry _registry = null!;

    public async Task InitializeAsync() => _registry = await FakeRegistry.StartAsync();

    public async Task DisposeAsync() => await _registry.DisposeAsync();

    private static TestImage Simple(string label = "x", Compression c = Compression.Gzip) =>
        TestImage.Build([TestImage.Layer(new TarBuilder().File("hello", label).Build(), c)], label: label);

    [Fact]
    public async Task A_multi_arch_index_gives_linux_amd64_and_skips_the_attestation()
    {
        var image = TestImage.Build([TestImage.Layer(new TarBuilder().File("a", "1").Build())], user: "www-data:www-data", multiArch: true);
        _registry.Add("multi", "v1", image);
        using var h = new PullHarness();
        var id = await h.PullAsync($"{_registry.Host}/multi:v1");
        Assert.Equal(image.ConfigDigest, id);
        var stored = h.Store.Lookup(id)!;
        Assert.Equal([$"{_registry.Host}/multi:v1"], stored.RepoTags);
        Assert.Equal([$"{_registry.Host}/multi@{image.TopDigest}"], stored.RepoDigests);
        Assert.Equal(image.ManifestDigest, stored.ManifestDigest);
        Assert.Equal("www-data:www-data", h.Store.Find(id)!.Config.User);
        // Every name finds it: id, short id, tag, digest.
        foreach (var name in new[] { id, id[7..], id[7..19], $"{_registry.Host}/multi:v1", $"{_registry.Host}/multi@{image.TopDigest}" })
            Assert.Equal(id, h.Store.Lookup(name)?.Id);
        Assert.Equal(0, _registry.Count("/manifests/" + TestImage.Digest(image.ExtraBlobs.Keys.Select(k => image.ExtraBlobs[k]).First())));
    }

    [Fact]
    public async Task Layers_stack_gzip_zstd_and_plain_with_whiteouts_and_are_shared_by_chain_id()
    {
        var baseLayer = TestImage.Layer(new TarBuilder().Dir("etc/").File("etc/a", "a").File("etc/b", "b").Dir("var/").File("var/x", "x").Build(), Compression.Gzip);
        var top = TestImage.Layer(new TarBuilder().File("etc/.wh.a", "").File("var/.wh..wh..opq", "").File("var/y", "y").Build(), Compression.Zstd);
        var plain = TestImage.Layer(new TarBuilder().File("plain", "p").Build(), Compression.None);
        var one = TestImage.Build([baseLayer, top, plain], label: "one");
        var two = TestImage.Build([baseLayer], label: "two");
        _registry.Add("one", "latest", one);
        _registry.Add("two", "latest", two);
        using var h = new PullHarness();
        var id = await h.PullAsync($"{_registry.Host}/one");
        var image = h.Store.Lookup(id)!;
        Assert.Equal(3, image.Layers.Count);
        Assert.Equal("a", File.ReadAllText(Path.Combine(h.LayerFolder(image, 0), "etc/a")));
        Assert.True(File.Exists(Path.Combine(h.LayerFolder(image, 1), "etc/a")), "the whiteout is a device named like the file");
        Assert.Equal("p", File.ReadAllText(Path.Combine(h.LayerFolder(image, 2), "plain")));

        // The second image's only layer is the first's base: same chain id, not fetched again.
        await h.PullAsync($"{_registry.Host}/two");
        Assert.Equal(1, _registry.Count("/blobs/" + baseLayer.Digest));
        Assert.Equal(3, h.Store.Current.Layers.Count);
        var folders = h.Store.Retain("c1", id);
        Assert.Equal([h.LayerFolder(image, 2), h.LayerFolder(image, 1), h.LayerFolder(image, 0)], folders);
    }

    [Fact]
    public async Task Concurrent_pulls_of_one_image_share_one_download()
    {
        var image = Simple("common");
        _registry.Add("common", "latest", image);
        var release = new TaskCompletionSource();
        _registry.Intercept = async ctx =>
        {
            if (ctx.Request.Path.Value!.Contains("/blobs/" + image.Layers[0].Digest))
                await release.Task;
            return false;
        };
        using var h = new PullHarness();
        var pulls = Enumerable.Range(0, 4).Select(_ => h.PullAsync($"{_registry.Host}/common")).ToArray();
        await Task.Delay(300);
        release.SetResult();
        var ids = await Task.WhenAll(pulls);
        Assert.All(ids, i => Assert.Equal(image.ConfigDigest, i));
        Assert.Equal(1, _registry.Count("/manifests/latest"));
        Assert.Equal(1, _registry.Count("/blobs/" + image.Layers[0].Digest));
    }

    [Fact]
    public async Task A_transfer_that_breaks_resumes_with_a_range_request()
    {
        var big = new byte[3 << 20];
        new Random(1).NextBytes(big);
        var image = TestImage.Build([TestImage.Layer(new TarBuilder().File("big", big).Build(), Compression.None)]);
        _registry.Add("resume", "latest", image);
        var first = true;
        _registry.Intercept = async ctx =>
        {
            if (!ctx.Request.Path.Value!.Contains("/blobs/" + image.Layers[0].Digest) || !first)
                return false;
            first = false;
            await FakeRegistry.ServeBlob(ctx, image.Layers[0].Blob, cutAfter: 1 << 20);
            return true;
        };
        using var h = new PullHarness();
        Assert.Equal(image.ConfigDigest, await h.PullAsync($"{_registry.Host}/resume"));
        var ranges = _registry.Requests.Where(r => r.Path.Contains("/blobs/" + image.Layers[0].Digest)).Select(r => r.Range).ToList();
        Assert.Equal(2, ranges.Count);
        Assert.Null(ranges[0]);
        Assert.StartsWith("bytes=", ranges[1]);
        Assert.NotEqual("bytes=0-", ranges[1]);
    }

    public static TheoryData<string, string> Hostile => new()
    {
        { "wrong-digest", "digest is" },
        { "wrong-diff-id", "diff id" },
        { "truncated", "gave up after" },
        { "longer", "longer than" },
        { "endless-manifest", "longer than the 4194304 bytes" },
        { "stalled-blob", "no byte for" },
        { "stalled-manifest", "no byte for 1 s" },
        { "wrong-manifest-digest", "not the sha256:" },
        { "bad-config", "config" },
        { "schema1", "schema 1" },
        { "no-amd64", "no linux/amd64" },
        { "missing", "not found" },
        { "traversal", "climbs out" },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public async Task Hostile_registries_are_refused_clearly_and_leave_nothing(string kind, string expected)
    {
        var layer = TestImage.Layer(new TarBuilder().File("f", new string('z', 200_000)).Build());
        var image = kind switch
        {
            "wrong-diff-id" => TestImage.Build([layer], diffIdsOverride: ["sha256:" + new string('0', 64)]),
            "traversal" => TestImage.Build([TestImage.Layer(new TarBuilder().File("ok", "1").File("../escape", "x").Build())]),
            _ => TestImage.Build([layer]),
        };
        _registry.Add("bad", "latest", image);
        var reference = $"{_registry.Host}/bad";
        var blobPath = "/blobs/" + image.Layers[0].Digest;
        _registry.Intercept = async ctx =>
        {
            var path = ctx.Request.Path.Value!;
            switch (kind)
            {
                case "wrong-digest" when path.Contains(blobPath):
                    var evil = TestImage.Layer(new TarBuilder().File("f", new string('y', 200_000)).Build()).Blob;
                    await FakeRegistry.ServeBlob(ctx, evil.Length == image.Layers[0].Blob.Length ? evil : evil.Concat(new byte[Math.Max(0, image.Layers[0].Blob.Length - evil.Length)]).Take(image.Layers[0].Blob.Length).ToArray());
                    return true;
                case "truncated" when path.Contains(blobPath):
                    ctx.Response.ContentLength = 1000;
                    await ctx.Response.Body.WriteAsync(image.Layers[0].Blob.AsMemory(0, 1000));
                    return true;
                case "longer" when path.Contains(blobPath):
                    await FakeRegistry.ServeBlob(ctx, [.. image.Layers[0].Blob, .. new byte[4096]]);
                    return true;
                case "endless-manifest" when path.Contains("/manifests/"):
                    ctx.Response.ContentType = "application/vnd.oci.image.manifest.v1+json";
                    var chunk = Encoding.UTF8.GetBytes(new string(' ', 65536));
                    for (var i = 0; i < 1000 && !ctx.RequestAborted.IsCancellationRequested; i++)
                        await ctx.Response.Body.WriteAsync(chunk, ctx.RequestAborted);
                    return true;
                case "stalled-blob" when path.Contains(blobPath):
                case "stalled-manifest" when path.Contains("/manifests/"):
                    ctx.Response.ContentLength = 100_000;
                    await ctx.Response.Body.WriteAsync(new byte[10]);
                    await ctx.Response.Body.FlushAsync();
                    await Task.Delay(TimeSpan.FromSeconds(30), ctx.RequestAborted).ContinueWith(_ => { });
                    return true;
                case "wrong-manifest-digest" when path.Contains("/manifests/"):
                    return false;
                case "bad-config" when path.Contains("/blobs/" + image.ConfigDigest):
                    ctx.Response.StatusCode = 200;
                    await ctx.Response.WriteAsync("not json");
                    return true;
                case "schema1" when path.Contains("/manifests/"):
                    ctx.Response.ContentType = "application/vnd.docker.distribution.manifest.v1+prettyjws";
                    await ctx.Response.WriteAsync("{\"schemaVersion\":1,\"fsLayers\":[]}");
                    return true;
                case "no-amd64" when path.Contains("/manifests/"):
                    ctx.Response.ContentType = "application/vnd.oci.image.index.v1+json";
                    await ctx.Response.WriteAsync("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" + image.ManifestDigest + "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"s390x\"}}]}");
                    return true;
                default:
                    return false;
            }
        };
        if (kind == "wrong-manifest-digest")
            reference = $"{_registry.Host}/bad@sha256:{new string('1', 64)}";
        if (kind == "wrong-manifest-digest")
            _registry.Manifests[$"bad@sha256:{new string('1', 64)}"] = ("application/vnd.oci.image.manifest.v1+json", image.Manifest);
        if (kind == "missing")
            reference = $"{_registry.Host}/absent:1";
        // Only the stalled kinds wait for the idle timeout; the others get one a loaded machine cannot
        // reach by accident (1 s was, once: the wrong-diff-id pull failed on an idle read instead).
        using var h = new PullHarness(idleSeconds: kind.StartsWith("stalled", StringComparison.Ordinal) ? 1 : 30);
        var e = await Assert.ThrowsAnyAsync<CriException>(() => h.PullAsync(reference));
        Assert.Contains(expected, e.Message);
        Assert.Contains(reference.Split('@')[0].Split(':')[0], e.Message);
        if (kind == "missing")
            Assert.IsType<NotFoundException>(e);
        h.AssertEmpty();
    }

    [Fact]
    public async Task Bearer_tokens_with_credentials_and_redirects_that_never_carry_them_elsewhere()
    {
        await using var storage = await FakeRegistry.StartAsync();
        var image = Simple("auth");
        _registry.Add("private/app", "v1", image);
        storage.Blobs[image.Layers[0].Digest] = image.Layers[0].Blob;
        var basic = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("alice:s3cret"));
        _registry.Intercept = async ctx =>
        {
            var path = ctx.Request.Path.Value!;
            if (path == "/token")
            {
                if (ctx.Request.Headers.Authorization != basic || ctx.Request.Query["scope"] != "repository:private/app:pull" || ctx.Request.Query["service"] != "fake")
                {
                    ctx.Response.StatusCode = 401;
                    return true;
                }
                await ctx.Response.WriteAsync("{\"token\":\"tok-123\"}");
                return true;
            }
            if (ctx.Request.Headers.Authorization != "Bearer tok-123")
            {
                ctx.Response.StatusCode = 401;
                ctx.Response.Headers.WWWAuthenticate = $"Bearer realm=\"http://{_registry.Host}/token\",service=\"fake\",scope=\"repository:private/app:pull\"";
                return true;
            }
            if (path.Contains("/blobs/" + image.Layers[0].Digest))
            {
                ctx.Response.StatusCode = 307;
                ctx.Response.Headers.Location = $"http://{storage.Host}/v2/private/app/blobs/{image.Layers[0].Digest}?signed=1";
                return true;
            }
            return false;
        };
        using (var anonymous = new PullHarness())
        {
            var e = await Assert.ThrowsAsync<RuntimeFailureException>(() => anonymous.PullAsync($"{_registry.Host}/private/app:v1"));
            Assert.Contains("token service answered 401", e.Message);
            anonymous.AssertEmpty();
        }
        using var h = new PullHarness();
        Assert.Equal(image.ConfigDigest, await h.PullAsync($"{_registry.Host}/private/app:v1", new Credentials("alice", "s3cret")));
        var redirected = Assert.Single(storage.Requests);
        Assert.Null(redirected.Authorization);
        Assert.Contains(_registry.Requests, r => r.Authorization == "Bearer tok-123");
    }

    [Fact]
    public async Task Identity_tokens_are_refreshed_at_the_realm_and_registry_tokens_are_sent_as_given()
    {
        var image = Simple("tokens");
        _registry.Add("tok", "v1", image);
        _registry.Intercept = async ctx =>
        {
            if (ctx.Request.Path.Value == "/token")
            {
                var form = ctx.Request.HasFormContentType ? await ctx.Request.ReadFormAsync() : null;
                if (ctx.Request.Method != "POST" || form is null || form["grant_type"].ToString() != "refresh_token"
                    || form["refresh_token"].ToString() != "refresh-me" || form["scope"].ToString() != "repository:tok:pull")
                {
                    ctx.Response.StatusCode = 401;
                    return true;
                }
                await ctx.Response.WriteAsync("{\"access_token\":\"from-refresh\"}");
                return true;
            }
            var auth = ctx.Request.Headers.Authorization.ToString();
            if (auth is "Bearer from-refresh" or "Bearer kubelet-token")
                return false;
            ctx.Response.StatusCode = 401;
            ctx.Response.Headers.WWWAuthenticate = $"Bearer realm=\"http://{_registry.Host}/token\",service=\"fake\"";
            return true;
        };
        using (var h = new PullHarness())
            Assert.Equal(image.ConfigDigest, await h.PullAsync($"{_registry.Host}/tok:v1", new Credentials(IdentityToken: "refresh-me")));
        using (var h = new PullHarness())
            Assert.Equal(image.ConfigDigest, await h.PullAsync($"{_registry.Host}/tok:v1", new Credentials(RegistryToken: "kubelet-token")));
        Assert.DoesNotContain(_registry.Requests, r => r.Path == "/token" && r.Authorization is not null);
    }

    [Fact]
    public async Task Basic_auth_from_the_credentials_file_and_a_registry_token_as_given()
    {
        var image = Simple("basic");
        _registry.Add("app", "v1", image);
        var basic = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("bob:pw"));
        _registry.Intercept = ctx =>
        {
            var auth = ctx.Request.Headers.Authorization.ToString();
            if (auth == basic || auth == "Bearer given-token")
                return Task.FromResult(false);
            ctx.Response.StatusCode = 401;
            ctx.Response.Headers.WWWAuthenticate = auth.Length == 0 && ctx.Request.Path.Value!.Contains("v2") ? "Basic realm=\"fake\"" : "Basic realm=\"fake\"";
            return Task.FromResult(true);
        };
        var dir = Directory.CreateTempSubdirectory("crid-creds-").FullName;
        try
        {
            var file = Path.Combine(dir, "auth.json");
            File.WriteAllText(file, $"{{\"auths\":{{\"{_registry.Host}\":{{\"auth\":\"{Convert.ToBase64String(Encoding.UTF8.GetBytes("bob:pw"))}\"}}}}}}");
            using var h = new PullHarness(credentialsFile: file);
            Assert.Equal(image.ConfigDigest, await h.PullAsync($"{_registry.Host}/app:v1"));
            using var none = new PullHarness();
            var e = await Assert.ThrowsAsync<RuntimeFailureException>(() => none.PullAsync($"{_registry.Host}/app:v1"));
            Assert.Contains("username and password", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task A_remapped_prefix_never_contacts_its_own_host_and_mirrors_come_first()
    {
        var image = Simple("remap");
        _registry.Add("team/app", "1.0", image);
        // The mirror is a port nobody listens on: the pull falls back to the location.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var deadPort = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var h = new PullHarness([new RegistryEntry
        {
            Prefix = "registry.example.invalid",
            Location = _registry.Host,
            Insecure = true,
            Mirrors = [new RegistryMirror($"127.0.0.1:{deadPort}", true)],
        }]);
        var id = await h.PullAsync("registry.example.invalid/team/app:1.0");
        Assert.Equal(["registry.example.invalid/team/app:1.0"], h.Store.Lookup(id)!.RepoTags);
        Assert.Equal(image.ConfigDigest, h.Store.Lookup("registry.example.invalid/team/app:1.0")?.Id);
    }

    [Fact]
    public async Task A_present_image_costs_one_conditional_request_by_tag_or_digest_and_a_moved_tag_is_fetched()
    {
        var image = TestImage.Build([TestImage.Layer(new TarBuilder().File("a", "1").Build())], multiArch: true, label: "present");
        _registry.Add("present", "v1", image);
        using var h = new PullHarness();
        var id = await h.PullAsync($"{_registry.Host}/present:v1");
        foreach (var name in new[] { $"{_registry.Host}/present:v1", $"{_registry.Host}/present@{image.TopDigest}", $"{_registry.Host}/present:v1@{image.TopDigest}" })
        {
            h.Sent.Clear();
            Assert.Equal(id, await h.PullAsync(name));
            // The index's own request only, answered 304: no platform manifest, config or layer request.
            var only = Assert.Single(h.Sent);
            Assert.Equal($"\"{image.TopDigest}\"", only.IfNoneMatch);
            Assert.Equal(304, only.Status);
            Assert.EndsWith(name.Contains('@') ? $"/manifests/{image.TopDigest}" : "/manifests/v1", only.Path);
        }

        // The tag moves: the same request gets the new index, and the new image is pulled.
        var moved = TestImage.Build([TestImage.Layer(new TarBuilder().File("a", "2").Build())], multiArch: true, label: "moved");
        _registry.Add("present", "v1", moved);
        h.Sent.Clear();
        Assert.Equal(moved.ConfigDigest, await h.PullAsync($"{_registry.Host}/present:v1"));
        var first = h.Sent.First();
        Assert.Equal(($"/v2/present/manifests/v1", $"\"{image.TopDigest}\"", 200), first);
        Assert.Equal([$"{_registry.Host}/present:v1"], h.Store.Lookup(moved.ConfigDigest)!.RepoTags);
        Assert.Empty(h.Store.Lookup(id)!.RepoTags);
    }

    [Fact]
    public async Task A_304_for_an_image_damaged_here_or_one_that_contradicts_itself_gets_the_manifest_again()
    {
        var image = TestImage.Build([TestImage.Layer(new TarBuilder().File("a", "1").Build())], multiArch: true, label: "damaged");
        _registry.Add("damaged", "v1", image);
        using var h = new PullHarness();
        var id = await h.PullAsync($"{_registry.Host}/damaged:v1");

        // The config blob is gone from the store: the 304 says nothing moved, but the image is not whole.
        File.Delete(h.Store.BlobPath(image.ConfigDigest));
        h.Sent.Clear();
        Assert.Equal(id, await h.PullAsync($"{_registry.Host}/damaged:v1"));
        Assert.Equal([
            ("/v2/damaged/manifests/v1", $"\"{image.TopDigest}\"", 304),
            ("/v2/damaged/manifests/v1", null, 200),
            ($"/v2/damaged/manifests/{image.ManifestDigest}", null, 200),
            ($"/v2/damaged/blobs/{image.ConfigDigest}", null, 200),
        ], h.Sent.ToArray());
        Assert.True(File.Exists(h.Store.BlobPath(image.ConfigDigest)));

        // A registry whose 304 names another digest is asked again without the condition.
        _registry.Intercept = ctx =>
        {
            if (ctx.Request.Headers.IfNoneMatch.Count == 0)
                return Task.FromResult(false);
            ctx.Response.StatusCode = 304;
            ctx.Response.Headers["Docker-Content-Digest"] = "sha256:" + new string('0', 64);
            return Task.FromResult(true);
        };
        h.Sent.Clear();
        Assert.Equal(id, await h.PullAsync($"{_registry.Host}/damaged:v1"));
        Assert.Equal([(304, true), (200, false), (200, false)], h.Sent.Select(r => (r.Status, r.IfNoneMatch is not null)).ToArray());

        // A registry that ignores If-None-Match answers 200: the pull is still done with manifests only.
        _registry.Intercept = null;
        _registry.HonorsIfNoneMatch = false;
        h.Sent.Clear();
        Assert.Equal(id, await h.PullAsync($"{_registry.Host}/damaged:v1"));
        Assert.Equal(["/v2/damaged/manifests/v1", $"/v2/damaged/manifests/{image.ManifestDigest}"], h.Sent.Select(r => r.Path).ToArray());
    }

    [Fact]
    public async Task A_tag_that_moves_leaves_the_old_image_to_be_collected_unless_a_container_holds_it()
    {
        using var h = new PullHarness();
        var old = Simple("old");
        _registry.Add("moving", "latest", old);
        var oldId = await h.PullAsync($"{_registry.Host}/moving");
        var folders = h.Store.Retain("container-1", oldId);
        var fresh = Simple("new");
        _registry.Add("moving", "latest", fresh);
        await h.PullAsync($"{_registry.Host}/moving");
        // The old image lost its tag but keeps its digest name, as containerd's and docker's do.
        var dangling = h.Store.Lookup(oldId)!;
        Assert.Empty(dangling.RepoTags);
        Assert.Equal([$"{_registry.Host}/moving@{old.TopDigest}"], dangling.RepoDigests);
        Assert.True(h.Store.Remove(oldId));
        Assert.Null(h.Store.Lookup(oldId));
        Assert.True(Directory.Exists(folders[0]), "a held layer stays");
        Assert.Equal(folders, h.Store.Retain("container-1", oldId));
        h.Store.Release("container-1");
        Assert.False(Directory.Exists(folders[0]));
        Assert.True(h.Store.Remove(fresh.ConfigDigest));
        h.AssertEmpty();
        Assert.Throws<NotFoundException>(() => h.Store.Retain("c2", oldId));
    }

    [Fact]
    public async Task Recovery_removes_what_a_crash_left_and_holds_of_dead_containers()
    {
        var image = Simple("recover");
        _registry.Add("rec", "latest", image);
        using var h = new PullHarness();
        var id = await h.PullAsync($"{_registry.Host}/rec");
        h.Store.Retain("alive", id);
        h.Store.Retain("dead", id);
        h.Store.Remove(id);
        var (_, orphan) = h.Store.NewSnapshot();
        File.WriteAllText(Path.Combine(orphan, "half"), "x");
        File.WriteAllText(Path.Combine(h.Store.Root, "tmp", "index.json.123"), "partial");
        File.WriteAllText(h.Store.BlobPath("sha256:" + new string('e', 64)), "stray");
        h.Store.Recover();
        Assert.False(Directory.Exists(orphan));
        Assert.Single(h.Store.Current.Layers);
        h.Store.ReleaseAllExcept(new HashSet<string> { "alive" });
        Assert.Single(h.Store.Current.Layers);
        h.Store.ReleaseAllExcept(new HashSet<string>());
        h.AssertEmpty();
    }
}
