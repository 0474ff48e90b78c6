using System.Collections.Concurrent;
using Crid.Core.Configuration;
using Crid.Images.Pull;
using Crid.Images.References;
using Crid.Images.Registry;
using Crid.Images.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace Crid.Images.Tests.Support;

/// <summary>A store in a temporary folder and a puller whose registries list points at test registries only.</summary>
public sealed class PullHarness : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("crid-pull-").FullName;
    public ImageStore Store { get; }
    public ImagePuller Puller { get; }
    public RegistryClient Client { get; }

    /// <summary>Every request the client sent, as it left (path, If-None-Match) and how it was answered.</summary>
    public ConcurrentQueue<(string Path, string? IfNoneMatch, int Status)> Sent { get; } = new();

    public PullHarness(IReadOnlyList<RegistryEntry>? registries = null, double idleSeconds = 10, string credentialsFile = "")
    {
        Store = new ImageStore(Path.Combine(Dir, "images"));
        Client = new RegistryClient(TimeSpan.FromSeconds(idleSeconds),
            new Recorder(Sent) { InnerHandler = new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false } });
        Puller = new ImagePuller(Store, new RegistryHosts(registries ?? []), Client, new CredentialsFile(credentialsFile), NullLogger<ImagePuller>.Instance);
    }

    public Task<string> PullAsync(string reference, Credentials? creds = null) =>
        Puller.PullAsync(ImageReference.Parse(reference), creds, CancellationToken.None);

    /// <summary>The store holds nothing: no image, no layer, no folder, no blob, no partial file.</summary>
    public void AssertEmpty()
    {
        var index = Store.Current;
        Assert.Empty(index.Images);
        Assert.Empty(index.Layers);
        foreach (var sub in new[] { "snapshots", "tmp", "trash", "blobs/sha256" })
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(Store.Root, sub)));
    }

    public string LayerFolder(StoredImage image, int i) => Store.SnapshotPath(Store.Layer(image.Layers[i])!.Snapshot);

    public void Dispose()
    {
        Client.Dispose();
        Store.Dispose();
        Directory.Delete(Dir, true);
    }

    private sealed class Recorder(ConcurrentQueue<(string, string?, int)> sent) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken ct)
        {
            var response = await base.SendAsync(request, ct);
            var etags = request.Headers.IfNoneMatch.Count > 0 ? string.Join(", ", request.Headers.IfNoneMatch) : null;
            sent.Enqueue((request.RequestUri!.AbsolutePath, etags, (int)response.StatusCode));
            return response;
        }
    }
}
