using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Crid.Core.Networking;

/// <summary>A CNI plugin refused, failed or hung; the message is the plugin's own words.</summary>
internal sealed class CniPluginException(string message) : Exception(message);

/// <summary>
/// Runs one CNI plugin the way the CNI spec ("Execution protocol") prescribes: the executable named by
/// the config's <c>type</c>, found in CNI_PATH; parameters in CNI_* environment variables; the network
/// config as JSON on stdin; a result (or an error object and a non-zero exit) as JSON on stdout.
/// </summary>
internal static class CniPlugin
{
    public sealed record Call(string Command, string ContainerId, string NetNs, string IfName, string Args);

    public static string Find(IReadOnlyList<string> binDirs, string type)
    {
        foreach (var dir in binDirs)
        {
            var path = Path.Combine(dir, type);
            if (File.Exists(path))
                return path;
        }
        throw new CniPluginException($"plugin \"{type}\" not found in {string.Join(":", binDirs)}");
    }

    /// <summary>
    /// Runs the plugin; returns its stdout (a result for ADD, usually empty for DEL). Nothing here
    /// blocks a thread: the config is written, the output read and the exit awaited asynchronously,
    /// so many calls at once on a small machine cannot starve the thread pool that reads the
    /// plugins' output (which once made a finished plugin look as if it had printed nothing).
    /// </summary>
    /// <param name="cancel">the caller's token: the plugin is killed when it fires, as at the timeout.</param>
    /// <exception cref="CniPluginException">not found, a CNI error, a non-zero exit, or past the timeout.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancel"/> fired; the plugin was killed.</exception>
    public static async Task<JsonObject?> InvokeAsync(IReadOnlyList<string> binDirs, JsonObject plugin, Call call, TimeSpan timeout, ILogger log, CancellationToken cancel)
    {
        var type = CniNetwork.TypeOf(plugin);
        var info = new ProcessStartInfo(Find(binDirs, type))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardInputEncoding = new UTF8Encoding(false),
        };
        info.Environment["CNI_COMMAND"] = call.Command;
        info.Environment["CNI_CONTAINERID"] = call.ContainerId;
        info.Environment["CNI_NETNS"] = call.NetNs;
        info.Environment["CNI_IFNAME"] = call.IfName;
        info.Environment["CNI_ARGS"] = call.Args;
        info.Environment["CNI_PATH"] = string.Join(':', binDirs);

        var started = Stopwatch.GetTimestamp();
        Process? child;
        try
        {
            child = Process.Start(info);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            // Not executable, a bad interpreter line: the plugin's failure, reported like any other.
            throw new CniPluginException($"plugin \"{type}\" could not be started: {e.Message}");
        }
        using var process = child ?? throw new CniPluginException($"plugin \"{type}\" could not be started");
        using var stopReading = new CancellationTokenSource();
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var reading = Task.WhenAll(Drain(process.StandardOutput, stdout, stopReading.Token), Drain(process.StandardError, stderr, stopReading.Token));
        try
        {
            await process.StandardInput.WriteAsync(plugin.ToJsonString().AsMemory(), cancel).ConfigureAwait(false);
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The plugin exited without reading its config; its exit status and output tell why.
        }

        using (var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancel))
        {
            deadline.CancelAfter(timeout);
            try
            {
                await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Its children go too: a shell-script plugin's sleeping child would otherwise keep the
                // pipes open and outlive the call.
                try { process.Kill(entireProcessTree: true); }
                catch (InvalidOperationException) { }
                using (var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
                {
                    try { await process.WaitForExitAsync(grace.Token).ConfigureAwait(false); }
                    catch (OperationCanceledException) { }
                }
                await stopReading.CancelAsync().ConfigureAwait(false);
                cancel.ThrowIfCancellationRequested();
                NetworkLog.PluginKilled(log, type, call.Command, timeout.TotalSeconds);
                throw new CniPluginException($"plugin \"{type}\" did not finish {call.Command} within {timeout.TotalSeconds:0.###} s and was killed");
            }
        }

        // The output is complete at EOF. A grandchild the plugin left running may hold the pipes
        // open for ever: then what the plugin printed before it exited is taken as it is, never dropped.
        if (await Task.WhenAny(reading, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false) != reading)
            await stopReading.CancelAsync().ConfigureAwait(false);
        try { await reading.ConfigureAwait(false); }
        catch (OperationCanceledException) { }
        string output, errors;
        lock (stdout)
            output = stdout.ToString();
        lock (stderr)
            errors = stderr.ToString().Trim();
        NetworkLog.PluginRan(log, call.Command, type, call.ContainerId, process.ExitCode, Stopwatch.GetElapsedTime(started).TotalMilliseconds);

        JsonObject? json = null;
        if (!string.IsNullOrWhiteSpace(output))
        {
            try { json = JsonNode.Parse(output) as JsonObject; }
            catch (JsonException) when (process.ExitCode != 0) { }
            catch (JsonException e) { throw new CniPluginException($"plugin \"{type}\" {call.Command} printed no valid JSON: {e.Message}"); }
        }
        // The spec's error object: {"cniVersion", "code", "msg", "details"}; a plugin may print it with
        // exit status 0 too, which is still a failure.
        if (process.ExitCode != 0 || json?["code"] is JsonValue)
            throw new CniPluginException(ErrorText(type, call.Command, process.ExitCode, json, output, errors));
        return json;
    }

    /// <summary>Reads a pipe to its end (or until stopped) into <paramref name="into"/>, chunk by chunk.</summary>
    private static async Task Drain(StreamReader reader, StringBuilder into, CancellationToken stop)
    {
        var buffer = new char[4096];
        try
        {
            int n;
            while ((n = await reader.ReadAsync(buffer.AsMemory(), stop).ConfigureAwait(false)) > 0)
            {
                lock (into)
                    into.Append(buffer, 0, n);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
        }
    }

    private static string ErrorText(string type, string command, int exit, JsonObject? error, string output, string stderr)
    {
        var text = new StringBuilder($"plugin \"{type}\" {command} failed");
        if (error?["code"] is JsonValue code)
            text.Append(" (CNI error ").Append(code.ToJsonString()).Append(')');
        else
            text.Append(" (exit ").Append(exit).Append(')');
        if (error?["msg"] is JsonValue msg && msg.TryGetValue<string>(out var m) && m.Length > 0)
            text.Append(": ").Append(m);
        else if (error is null && output.Trim().Length > 0)
            text.Append(": ").Append(output.Trim());
        if (error?["details"] is JsonValue details && details.TryGetValue<string>(out var d) && d.Length > 0)
            text.Append(" (").Append(d).Append(')');
        if (stderr.Length > 0)
            text.Append("; stderr: ").Append(stderr);
        return text.ToString();
    }
}
