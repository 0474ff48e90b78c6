using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Crid.Streaming.Tests.Host;

/// <summary>
/// busybox httpd serving one page on 127.0.0.1:PORT inside a pod's network namespace, entered with
/// nsenter(1): a server only that namespace can reach, started without any of crid's code.
/// </summary>
internal sealed class PodHttpServer : IDisposable
{
    private readonly Process _process;
    private readonly string _root;

    private PodHttpServer(Process process, string root, int port, string page)
    {
        _process = process;
        _root = root;
        Port = port;
        Page = page;
    }

    public int Port { get; }

    public string Page { get; }

    public int Pid => _process.Id;

    public static async Task<PodHttpServer> StartAsync(string netnsPath, string page)
    {
        var root = Directory.CreateTempSubdirectory("crid-httpd-").FullName;
        await File.WriteAllTextAsync(Path.Combine(root, "index.html"), page);
        int port = HostFreePort();
        var info = new ProcessStartInfo("nsenter")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[] { "--net=" + netnsPath, "busybox", "httpd", "-f", "-p", $"127.0.0.1:{port}", "-h", root })
            info.ArgumentList.Add(arg);
        var process = Process.Start(info)!;
        var server = new PodHttpServer(process, root, port, page);
        try
        {
            // Listening shows in its namespace's /proc/PID/net/tcp: state 0A, local port in hex.
            var wanted = ":" + port.ToString("X4", CultureInfo.InvariantCulture) + " ";
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!File.ReadLines($"/proc/{process.Id}/net/tcp").Any(l => l.Contains(wanted) && l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3] == "0A"))
            {
                if (process.HasExited || DateTime.UtcNow > deadline)
                    throw new InvalidOperationException($"busybox httpd did not listen in {netnsPath}: {await process.StandardError.ReadToEndAsync()}");
                await Task.Delay(20);
            }
        }
        catch
        {
            server.Dispose();
            throw;
        }
        return server;
    }

    /// <summary>A port nothing listens on in the host's namespace (checked again by the tests that care).</summary>
    public static int HostFreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    public static bool HostListens(int port)
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            probe.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
                _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
        Directory.Delete(_root, recursive: true);
    }
}
