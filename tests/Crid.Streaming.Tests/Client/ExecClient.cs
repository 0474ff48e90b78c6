using System.Text;
using System.Text.Json;

namespace Crid.Streaming.Tests.Client;

/// <summary>What an exec or attach gave back.</summary>
internal sealed record ExecResult(string Stdout, string Stderr, string Status)
{
    /// <summary>The v4 status's exit code: 0 for Success, the ExitCode cause otherwise; null for any other failure.</summary>
    public int? ExitCode()
    {
        using var json = JsonDocument.Parse(Status);
        var root = json.RootElement;
        if (root.GetProperty("status").GetString() == "Success")
            return 0;
        if (root.TryGetProperty("reason", out var reason) && reason.GetString() == "NonZeroExitCode")
        {
            foreach (var cause in root.GetProperty("details").GetProperty("causes").EnumerateArray())
            {
                if (cause.GetProperty("reason").GetString() == "ExitCode")
                    return int.Parse(cause.GetProperty("message").GetString()!);
            }
        }
        return null;
    }
}

/// <summary>The client half of kubelet's remotecommand protocol, as client-go drives it.</summary>
internal static class ExecClient
{
    /// <summary>
    /// Opens the streams in client-go's order (error, stdin, stdout, stderr, resize), sends the sizes
    /// and the input (then closes stdin), and reads everything until the server ends each stream.
    /// </summary>
    public static async Task<ExecResult> RunAsync(SpdyTestClient client, bool stdin, bool stdout, bool stderr,
        bool tty = false, string? input = null, IEnumerable<(ushort Width, ushort Height)>? sizes = null, bool resizeStream = true,
        Func<Task>? beforeInput = null)
    {
        var error = await client.OpenAsync(("streamType", "error"));
        var inStream = stdin ? await client.OpenAsync(("streamType", "stdin")) : null;
        var outStream = stdout ? await client.OpenAsync(("streamType", "stdout")) : null;
        var errStream = stderr && !tty ? await client.OpenAsync(("streamType", "stderr")) : null;
        var resize = tty && resizeStream ? await client.OpenAsync(("streamType", "resize")) : null;

        var outText = outStream?.ReadAllTextAsync(TimeSpan.FromSeconds(60)) ?? Task.FromResult("");
        var errText = errStream?.ReadAllTextAsync(TimeSpan.FromSeconds(60)) ?? Task.FromResult("");
        var status = error.ReadAllTextAsync(TimeSpan.FromSeconds(60));
        foreach (var (w, h) in sizes ?? [])
            await resize!.WriteAsync(Encoding.UTF8.GetBytes($"{{\"Width\":{w},\"Height\":{h}}}\n"));
        if (beforeInput is not null)
            await beforeInput();
        if (inStream is not null)
        {
            if (input is not null)
                await inStream.WriteAsync(input);
            await inStream.CloseAsync();
        }
        return new ExecResult(await outText, await errText, await status);
    }
}
