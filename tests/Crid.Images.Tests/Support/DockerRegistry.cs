using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Crid.Images.Tests.Support;

/// <summary>
/// Debian's docker-registry, plain HTTP on 127.0.0.1 on a free port, with its storage in a
/// temporary folder; images go in with skopeo. Disposing kills it and removes the folder.
/// </summary>
public sealed class DockerRegistry : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _dir;

    public string Host { get; }

    private DockerRegistry(Process process, string dir, string host)
    {
        _process = process;
        _dir = dir;
        Host = host;
    }

    public static async Task<DockerRegistry> StartAsync()
    {
        foreach (var tool in new[] { "/usr/bin/docker-registry", "/usr/bin/skopeo" })
        {
            if (!File.Exists(tool))
                throw new InvalidOperationException($"{tool} is missing: `make test` installs docker-registry and skopeo");
        }
        var dir = Directory.CreateTempSubdirectory("crid-registry-").FullName;
        for (var attempt = 0; ; attempt++)
        {
            var port = FreePort();
            var host = $"127.0.0.1:{port}";
            File.WriteAllText(Path.Combine(dir, "config.yml"), $"""
                version: 0.1
                log:
                  level: error
                storage:
                  filesystem:
                    rootdirectory: {dir}/data
                  delete:
                    enabled: true
                http:
                  addr: {host}
                """);
            var info = new ProcessStartInfo("/usr/bin/docker-registry", ["serve", Path.Combine(dir, "config.yml")])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            foreach (var key in Environment.GetEnvironmentVariables().Keys.Cast<string>().Where(k => k.StartsWith("REGISTRY_", StringComparison.Ordinal)))
                info.Environment.Remove(key);
            var process = Process.Start(info)!;
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(2) };
            for (var i = 0; i < 100 && !process.HasExited; i++)
            {
                try
                {
                    if ((await http.GetAsync($"http://{host}/v2/")).IsSuccessStatusCode)
                        return new DockerRegistry(process, dir, host);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    // Not listening yet, or (a loaded machine) accepted but not answering within the timeout.
                }
                await Task.Delay(50);
            }
            if (!process.HasExited)
                process.Kill();
            await process.WaitForExitAsync();
            if (attempt >= 2)
            {
                Directory.Delete(dir, true);
                throw new InvalidOperationException("docker-registry did not come up");
            }
        }
    }

    /// <summary>Pushes an OCI layout's image with skopeo (all platforms of an index).</summary>
    public async Task PushAsync(TestImage image, string repoAndTag)
    {
        var layout = Path.Combine(_dir, "layout-" + Guid.NewGuid().ToString("N")[..8]);
        image.WriteLayout(layout, "img");
        var policy = Path.Combine(_dir, "policy.json");
        File.WriteAllText(policy, "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}");
        var info = new ProcessStartInfo("/usr/bin/skopeo",
            ["--policy", policy, "copy", "--quiet", "--all", "--dest-tls-verify=false", $"oci:{layout}:img", $"docker://{Host}/{repoAndTag}"])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var key in new[] { "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" })
            info.Environment.Remove(key);
        using var p = Process.Start(info)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Directory.Delete(layout, true);
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"skopeo copy to {repoAndTag} failed: {await err}");
    }

    private static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
            _process.Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
        Directory.Delete(_dir, true);
    }
}
