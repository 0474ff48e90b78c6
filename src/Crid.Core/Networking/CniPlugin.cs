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

    /// <summary>Runs the plugin; returns its stdout (a result for ADD, usually empty for DEL).</summary>
    /// <exception cref="CniPluginException">not found, a CNI error, a non-zero exit, or past the timeout.</exception>
    public static JsonObject? Invoke(IReadOnlyList<string> binDirs, JsonObject plugin, Call call, TimeSpan timeout, ILogger log)
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
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            process.StandardInput.Write(plugin.ToJsonString());
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The plugin exited without reading its config; its exit status and output tell why.
        }

        if (!process.WaitForExit(timeout))
        {
            // Its children go too: a shell-script plugin's sleeping child would otherwise keep the
            // pipes open and outlive the call.
            try { process.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
            process.WaitForExit(TimeSpan.FromSeconds(5));
            NetworkLog.PluginKilled(log, type, call.Command, timeout.TotalSeconds);
            throw new CniPluginException($"plugin \"{type}\" did not finish {call.Command} within {timeout.TotalSeconds:0.###} s and was killed");
        }
        // A grandchild the plugin left running may hold the pipes: never wait on them without bound.
        Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(5));
        var output = stdout.IsCompletedSuccessfully ? stdout.Result : "";
        var errors = stderr.IsCompletedSuccessfully ? stderr.Result.Trim() : "";
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
