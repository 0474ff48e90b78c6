using System.Diagnostics;
using System.Text.Json;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// The real runc on a state root of the test's own (`runc --root`), so the host's containers are
/// never seen or touched. Every call has a deadline: a hung container fails the test instead of the run.
/// </summary>
internal sealed class Runc(string root)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    public string Root { get; } = root;

    /// <summary>
    /// `runc run` in the foreground: the container's stdout, after it exited 0. runc's own stderr must
    /// stay empty: a warning about the spec is a spec bug too.
    /// </summary>
    public async Task<string> RunAsync(string bundle, string id)
    {
        var (code, output, error) = await RuncAsync(["run", "--bundle", bundle, id]);
        if (code != 0 || error.Length > 0)
            throw new InvalidOperationException($"runc run {id} exited {code}: {error}\n{output}");
        return output;
    }

    /// <summary>
    /// `runc run -d`. A detached container keeps runc's stdio as its own, so they go to /dev/null and
    /// a file: pipes to this process would stay open as long as the container lives.
    /// </summary>
    public async Task RunDetachedAsync(string bundle, string id)
    {
        var log = Path.Combine(bundle, "runc-detached.err");
        var (code, _, _) = await ExecAsync("/bin/sh",
            ["-c", "exec \"$0\" \"$@\" </dev/null >/dev/null 2>\"$LOG\"", "runc", "--root", Root, "run", "-d", "--bundle", bundle, id],
            new Dictionary<string, string> { ["LOG"] = log });
        if (code != 0 || new FileInfo(log).Length > 0)
            throw new InvalidOperationException($"runc run -d {id} exited {code}: {File.ReadAllText(log)}");
    }

    public Task<string> ExecInAsync(string id, params string[] args) => CheckedAsync(["exec", id, .. args]);

    /// <summary>`runc delete -f`: kills and removes; a container runc does not know is fine (idempotent).</summary>
    public async Task DeleteAsync(string id)
    {
        var (code, _, err) = await RuncAsync(["delete", "-f", id]);
        if (code != 0 && !err.Contains("does not exist", StringComparison.Ordinal))
            throw new InvalidOperationException($"runc delete -f {id} exited {code}: {err}");
    }

    /// <summary>The ids of the containers this root holds.</summary>
    public async Task<List<string>> ListAsync()
    {
        var json = await CheckedAsync(["list", "--format", "json"]);
        if (json.Trim() is "" or "null")
            return [];
        using var doc = JsonDocument.Parse(json);
        return [.. doc.RootElement.EnumerateArray().Select(c => c.GetProperty("id").GetString()!)];
    }

    /// <summary>The host pid of a running container's init process.</summary>
    public async Task<int> PidOfAsync(string id)
    {
        using var doc = JsonDocument.Parse(await CheckedAsync(["state", id]));
        return doc.RootElement.GetProperty("pid").GetInt32();
    }

    private async Task<string> CheckedAsync(string[] args)
    {
        var (code, output, error) = await RuncAsync(args);
        if (code != 0)
            throw new InvalidOperationException($"runc {string.Join(' ', args)} exited {code}: {error}\n{output}");
        return output;
    }

    private Task<(int Code, string Output, string Error)> RuncAsync(string[] args) => ExecAsync("runc", ["--root", Root, .. args]);

    private static async Task<(int Code, string Output, string Error)> ExecAsync(string file, string[] args, Dictionary<string, string>? env = null)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? [])
            info.Environment[k] = v;
        using var p = Process.Start(info)!;
        p.StandardInput.Close();
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(Deadline);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {Deadline.TotalSeconds} s");
        }
        return (p.ExitCode, await output, await error);
    }
}
