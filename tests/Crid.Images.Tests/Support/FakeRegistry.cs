using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Crid.Images.Tests.Support;

/// <summary>
/// A registry of the test's own (Kestrel on 127.0.0.1, a free port): serves manifests and blobs
/// from memory with Range support, records every request, and lets a test misbehave on purpose
/// through <see cref="Intercept"/> (wrong bytes, stalls, auth challenges, redirects).
/// </summary>
public sealed class FakeRegistry : IAsyncDisposable
{
    private readonly WebApplication _app;

    public ConcurrentDictionary<string, (string MediaType, byte[] Body)> Manifests { get; } = new();
    public ConcurrentDictionary<string, byte[]> Blobs { get; } = new();
    public ConcurrentQueue<(string Path, string? Authorization, string? Range)> Requests { get; } = new();

    /// <summary>Runs first for every request; returning true means it answered.</summary>
    public Func<HttpContext, Task<bool>>? Intercept { get; set; }

    public string Host { get; }

    /// <summary>Whether a manifest GET with If-None-Match naming its digest gets 304 (true, as distribution does) or the manifest.</summary>
    public bool HonorsIfNoneMatch { get; set; } = true;

    private FakeRegistry(WebApplication app, string host)
    {
        _app = app;
        Host = host;
    }

    public static async Task<FakeRegistry> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        var app = builder.Build();
        FakeRegistry? self = null;
        app.Run(ctx => self!.Handle(ctx));
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<IServerAddressesFeature>()!.Addresses.First());
        self = new FakeRegistry(app, $"127.0.0.1:{address.Port}");
        return self;
    }

    /// <summary>Serves <paramref name="image"/> as <c>repo:tag</c> (and by digest).</summary>
    public void Add(string repo, string tag, TestImage image)
    {
        Manifests[$"{repo}:{tag}"] = (image.TopMediaType, image.Top);
        Manifests[$"{repo}@{image.TopDigest}"] = (image.TopMediaType, image.Top);
        Manifests[$"{repo}@{image.ManifestDigest}"] = ("application/vnd.oci.image.manifest.v1+json", image.Manifest);
        foreach (var (d, b) in image.ExtraBlobs)
        {
            if (b.AsSpan().IndexOf("\"layers\""u8) >= 0)
                Manifests[$"{repo}@{d}"] = ("application/vnd.oci.image.manifest.v1+json", b);
        }
        foreach (var (d, b) in image.Blobs())
            Blobs[d] = b;
    }

    public int Count(string pathPart) => Requests.Count(r => r.Path.Contains(pathPart, StringComparison.Ordinal));

    private async Task Handle(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "";
        Requests.Enqueue((path, ctx.Request.Headers.Authorization.FirstOrDefault(), ctx.Request.Headers.Range.FirstOrDefault()));
        if (Intercept is not null && await Intercept(ctx))
            return;
        if (path == "/v2/")
        {
            ctx.Response.StatusCode = 200;
            return;
        }
        var m = path.IndexOf("/manifests/", StringComparison.Ordinal);
        if (path.StartsWith("/v2/", StringComparison.Ordinal) && m > 0)
        {
            var repo = path[4..m];
            var reference = path[(m + "/manifests/".Length)..];
            var key = reference.StartsWith("sha256:", StringComparison.Ordinal) ? $"{repo}@{reference}" : $"{repo}:{reference}";
            if (!Manifests.TryGetValue(key, out var manifest))
            {
                ctx.Response.StatusCode = 404;
                await ctx.Response.WriteAsync("{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}");
                return;
            }
            // As distribution does: the manifest's digest is its ETag, and a conditional GET that names
            // it is answered 304 Not Modified, without a body or the digest header.
            var digest = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(manifest.Body));
            if (HonorsIfNoneMatch && ctx.Request.Headers.IfNoneMatch.Any(v => v!.Split(',').Any(e => e.Trim().Trim('"') == digest)))
            {
                ctx.Response.StatusCode = 304;
                return;
            }
            ctx.Response.Headers.ETag = $"\"{digest}\"";
            ctx.Response.ContentType = manifest.MediaType;
            ctx.Response.ContentLength = manifest.Body.Length;
            await ctx.Response.Body.WriteAsync(manifest.Body);
            return;
        }
        var b = path.IndexOf("/blobs/", StringComparison.Ordinal);
        if (path.StartsWith("/v2/", StringComparison.Ordinal) && b > 0 && Blobs.TryGetValue(path[(b + "/blobs/".Length)..], out var blob))
        {
            await ServeBlob(ctx, blob);
            return;
        }
        ctx.Response.StatusCode = 404;
    }

    /// <summary>A blob with HTTP Range support (bytes=N-), as registries serve them.</summary>
    public static async Task ServeBlob(HttpContext ctx, byte[] blob, int? cutAfter = null)
    {
        var from = 0L;
        if (ctx.Request.Headers.Range.FirstOrDefault() is { } range && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            from = long.Parse(range[6..^1], System.Globalization.CultureInfo.InvariantCulture);
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers.ContentRange = $"bytes {from}-{blob.Length - 1}/{blob.Length}";
        }
        ctx.Response.ContentType = "application/octet-stream";
        var length = blob.Length - from;
        ctx.Response.ContentLength = length;
        if (cutAfter is { } cut && cut < length)
        {
            await ctx.Response.Body.WriteAsync(blob.AsMemory((int)from, cut));
            await ctx.Response.Body.FlushAsync();
            ctx.Abort();
            return;
        }
        await ctx.Response.Body.WriteAsync(blob.AsMemory((int)from));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
