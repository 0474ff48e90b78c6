using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Runtime.V1;

namespace Crid.Bench;

/// <summary>
/// PullImage of a busybox image (the conformance kit's shape: one gzip layer of a busybox root
/// file system) from Debian's docker-registry on 127.0.0.1, against the floor of doing the same
/// with standard tools in the same run: `skopeo copy` to a folder, then `tar -xzf` of its layer.
/// </summary>
internal static class ImagePulls
{
    public static async Task<(Samples Pull, Samples Floor, Samples Present, Samples PresentFloor, Samples PresentConditional)> MeasureAsync(DaemonUnderTest daemon, string dir, int iterations, int warmup, Progress progress, CancellationToken ct,
        Func<string, Task>? whileServed = null)
    {
        foreach (var tool in new[] { "/usr/bin/docker-registry", "/usr/bin/skopeo", "/bin/busybox" })
        {
            if (!File.Exists(tool))
                throw new InvalidOperationException($"{tool} is missing: the pull phase needs docker-registry, skopeo and busybox-static (make test installs them)");
        }
        Directory.CreateDirectory(dir);
        var port = FreePort();
        var host = $"127.0.0.1:{port}";
        using var registry = StartRegistry(dir, host);
        try
        {
            await WaitForAsync(host, ct);
            var layout = Path.Combine(dir, "layout");
            WriteBusyboxLayout(layout);
            var policy = Path.Combine(dir, "policy.json");
            File.WriteAllText(policy, "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}");
            await RunAsync("/usr/bin/skopeo", ["--policy", policy, "copy", "--quiet", "--dest-tls-verify=false", $"oci:{layout}:busybox", $"docker://{host}/bench/busybox:1"], ct);

            using var channel = DaemonUnderTest.CreateChannel(daemon.Socket);
            var images = new ImageService.ImageServiceClient(channel);
            var pulls = new Samples();
            var floor = new Samples();
            for (var i = 0; i < warmup + iterations; i++)
            {
                ct.ThrowIfCancellationRequested();
                var watch = Stopwatch.StartNew();
                var id = (await images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = $"{host}/bench/busybox:1" } }, cancellationToken: ct)).ImageRef;
                var pullMs = watch.Elapsed.TotalMilliseconds;
                await images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = id } }, cancellationToken: ct);

                var target = Path.Combine(dir, $"floor-{i}");
                var rootfs = Path.Combine(target, "rootfs");
                watch.Restart();
                await RunAsync("/usr/bin/skopeo", ["--policy", policy, "copy", "--quiet", "--src-tls-verify=false", $"docker://{host}/bench/busybox:1", $"dir:{target}"], ct);
                Directory.CreateDirectory(rootfs);
                var layer = Directory.GetFiles(target).Select(f => new FileInfo(f)).OrderByDescending(f => f.Length).First();
                await RunAsync("tar", ["-xzf", layer.FullName, "-C", rootfs], ct);
                var floorMs = watch.Elapsed.TotalMilliseconds;
                Directory.Delete(target, true);
                if (i >= warmup)
                {
                    pulls.Add(pullMs);
                    floor.Add(floorMs);
                }
                progress.Tick("image pulls", i + 1, warmup + iterations);
            }

            // A pull of an image already present (kubelet's IfNotPresent asks ImageStatus first, but
            // Always pulls every time): the registry is still asked about the manifest, no layer moves.
            // Its floors are that manifest request alone, made by the bench on a kept connection (the
            // daemon keeps its own): the plain GET, and the conditional GET the daemon makes (If-None-Match
            // with the digest it has, answered 304 Not Modified), one of each in turn; three times the
            // pulls' count, each is short.
            var present = new Samples();
            var presentFloor = new Samples();
            var presentConditional = new Samples();
            var reference = new PullImageRequest { Image = new ImageSpec { Image = $"{host}/bench/busybox:1" } };
            var kept = (await images.PullImageAsync(reference, cancellationToken: ct)).ImageRef;
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false });
            var manifestUri = new Uri($"http://{host}/v2/bench/busybox/manifests/1");
            var rounds = 3 * iterations;
            for (var i = 0; i < warmup + rounds; i++)
            {
                var t0 = Stopwatch.GetTimestamp();
                var again = (await images.PullImageAsync(reference, cancellationToken: ct)).ImageRef;
                var pullMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                if (again != kept)
                    throw new InvalidOperationException($"a second pull gave {again}, the first {kept}");
                t0 = Stopwatch.GetTimestamp();
                var top = await GetManifestAsync(http, manifestUri, known: null, ct);
                var floorMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                t0 = Stopwatch.GetTimestamp();
                await GetManifestAsync(http, manifestUri, known: top, ct);
                var conditionalMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                if (i >= warmup)
                {
                    present.Add(pullMs);
                    presentFloor.Add(floorMs);
                    presentConditional.Add(conditionalMs);
                }
                progress.Tick("pulls of a present image", i + 1, warmup + rounds);
            }
            await images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = kept } }, cancellationToken: ct);
            // Another phase that needs the image in a registry (ExecRpc), while it still serves.
            if (whileServed is not null)
                await whileServed($"{host}/bench/busybox:1");
            return (pulls, floor, present, presentFloor, presentConditional);
        }
        finally
        {
            if (!registry.HasExited)
                registry.Kill();
            await registry.WaitForExitAsync(CancellationToken.None);
        }
    }

    /// <summary>Debian's docker-registry serving from <paramref name="dir"/>/registry on <paramref name="host"/>; wait for it with <see cref="WaitForAsync"/>.</summary>
    internal static Process StartRegistry(string dir, string host)
    {
        File.WriteAllText(Path.Combine(dir, "registry.yml"),
            $"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {dir}/registry\nhttp:\n  addr: {host}\n");
        var registry = Process.Start(new ProcessStartInfo("/usr/bin/docker-registry", ["serve", Path.Combine(dir, "registry.yml")])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        registry.BeginErrorReadLine();
        registry.BeginOutputReadLine();
        return registry;
    }

    /// <summary>The kit's busybox, in short: /bin/busybox, an applet link per applet, /etc, one gzip layer.</summary>
    internal static void WriteBusyboxLayout(string layout)
    {
        var mtime = new DateTimeOffset(2023, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var tar = new MemoryStream();
        using (var w = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var d in new[] { "bin/", "etc/", "tmp/", "root/" })
                w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, d) { Mode = (UnixFileMode)0x1ED, ModificationTime = mtime });
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "bin/busybox")
            {
                Mode = (UnixFileMode)0x1ED, ModificationTime = mtime, DataStream = new MemoryStream(File.ReadAllBytes("/bin/busybox")),
            });
            var applets = new[] { "sh", "ls", "cat", "echo", "sleep", "cp", "mv", "rm", "mkdir", "ps", "top", "grep", "sed", "awk", "wget", "nc", "id", "env", "true", "false" };
            foreach (var a in applets)
                w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "bin/" + a) { LinkName = "busybox", ModificationTime = mtime });
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "etc/passwd")
            {
                Mode = (UnixFileMode)0x1A4, ModificationTime = mtime, DataStream = new MemoryStream("root:x:0:0:root:/root:/bin/sh\n"u8.ToArray()),
            });
        }
        var diff = tar.ToArray();
        byte[] layer;
        using (var gz = new MemoryStream())
        {
            using (var z = new GZipStream(gz, CompressionLevel.Optimal, leaveOpen: true))
                z.Write(diff);
            layer = gz.ToArray();
        }
        var config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{{\"Cmd\":[\"/bin/sh\"]}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{Digest(diff)}\"]}}}}");
        var manifest = Encoding.UTF8.GetBytes(
            $"{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"," +
            $"\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{Digest(config)}\",\"size\":{config.Length}}}," +
            $"\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"{Digest(layer)}\",\"size\":{layer.Length}}}]}}");
        var blobs = Path.Combine(layout, "blobs", "sha256");
        Directory.CreateDirectory(blobs);
        foreach (var b in new[] { layer, config, manifest })
            File.WriteAllBytes(Path.Combine(blobs, Digest(b)[7..]), b);
        File.WriteAllText(Path.Combine(layout, "oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
        File.WriteAllText(Path.Combine(layout, "index.json"),
            $"{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"{Digest(manifest)}\",\"size\":{manifest.Length},\"annotations\":{{\"org.opencontainers.image.ref.name\":\"busybox\"}}}}]}}");
    }

    private static string Digest(byte[] b) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(b));

    /// <summary>
    /// The manifest GET a pull makes first, with the media types a puller accepts; the body read whole
    /// and its digest returned. With <paramref name="known"/>, the conditional GET (If-None-Match), which
    /// must be answered 304 Not Modified.
    /// </summary>
    private static async Task<string> GetManifestAsync(HttpClient http, Uri uri, string? known, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        foreach (var type in new[] { "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json" })
            request.Headers.Accept.Add(new System.Net.Http.Headers.MediaTypeWithQualityHeaderValue(type));
        if (known is not null)
            request.Headers.IfNoneMatch.Add(new System.Net.Http.Headers.EntityTagHeaderValue($"\"{known}\""));
        using var response = await http.SendAsync(request, ct);
        if (known is not null)
        {
            if (response.StatusCode != HttpStatusCode.NotModified)
                throw new InvalidOperationException($"the registry answered {(int)response.StatusCode} to If-None-Match with the manifest's own digest, not 304");
            return known;
        }
        response.EnsureSuccessStatusCode();
        return Digest(await response.Content.ReadAsByteArrayAsync(ct));
    }

    internal static async Task RunAsync(string file, string[] args, CancellationToken ct)
    {
        var info = new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        using var p = Process.Start(info)!;
        var err = p.StandardError.ReadToEndAsync(ct);
        await p.StandardOutput.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {await err}");
    }

    internal static async Task WaitForAsync(string host, CancellationToken ct)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 200; i++)
        {
            try
            {
                if ((await http.GetAsync($"http://{host}/v2/", ct)).IsSuccessStatusCode)
                    return;
            }
            catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !ct.IsCancellationRequested))
            {
                // Not listening yet, or (a loaded machine) accepted but not answering within the timeout.
            }
            await Task.Delay(50, ct);
        }
        throw new InvalidOperationException($"docker-registry did not answer on {host}");
    }

    internal static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }
}
