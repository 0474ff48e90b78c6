using System.Text.RegularExpressions;

namespace Crid.Runtime.Tests;

/// <summary>conmon's k8s-file writer: the CRI log format, partial lines, reopening after rotation.</summary>
public partial class LogTests
{
    [GeneratedRegex(@"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) (.*)$")]
    private static partial Regex CriLine();

    private static List<(string Stream, string Tag, string Text)> Parse(string path)
    {
        var lines = new List<(string, string, string)>();
        foreach (var line in File.ReadLines(path))
        {
            var m = CriLine().Match(line);
            Assert.True(m.Success, $"not a CRI log line: {line[..Math.Min(line.Length, 120)]}");
            Assert.True(DateTimeOffset.TryParse(m.Groups[1].Value, out _), "timestamp is not RFC 3339: " + m.Groups[1].Value);
            lines.Add((m.Groups[2].Value, m.Groups[3].Value, m.Groups[4].Value));
        }

        return lines;
    }

    [Fact]
    public async Task Lines_are_in_the_CRI_format_and_a_100_KiB_line_is_split_into_partials()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        string script = "echo hello; echo oops >&2; head -c 102400 /dev/zero | tr '\\0' a; echo; printf 'no newline'";
        await rt.CreateAsync(host.Request("log", host.Bundle("log", ["sh", "-c", script])), RuntimeHost.Timeout());
        await RuntimeHost.ExitOfAsync(rt, "log", () => rt.StartAsync("log", RuntimeHost.Timeout()), TimeSpan.FromSeconds(10));

        var lines = Parse(host.LogPath("log"));
        Assert.Equal(("stdout", "F", "hello"), lines[0]);
        Assert.Contains(("stderr", "F", "oops"), lines);
        var big = lines.Where(l => l.Stream == "stdout").Skip(1).ToList();
        int full = big.FindIndex(l => l.Tag == "F");
        Assert.True(full > 0, "the long line was not split: " + string.Join(",", big.Select(l => l.Tag)));
        Assert.All(big.Take(full), l => Assert.Equal("P", l.Tag));
        Assert.Equal(new string('a', 102400), string.Concat(big.Take(full + 1).Select(l => l.Text)));

        // What ends without a newline is written as a partial line when the container exits.
        Assert.Equal(("stdout", "P", "no newline"), lines[^1]);
    }

    [Fact]
    public async Task Reopen_after_a_rename_returns_once_the_new_file_exists_and_new_lines_land_there()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        await host.RunAsync("rot", ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done"]);
        string log = host.LogPath("rot");
        await WaitForAsync(() => File.Exists(log) && new FileInfo(log).Length > 0);

        File.Move(log, log + ".1");
        await rt.ReopenLogAsync("rot", RuntimeHost.Timeout());
        Assert.True(File.Exists(log), "Reopen returned before the new file existed");
        await WaitForAsync(() => new FileInfo(log).Length > 0);
        Assert.All(Parse(log), l => Assert.StartsWith("tick ", l.Text));

        // The rotated file is complete and stays as it was.
        long rotated = new FileInfo(log + ".1").Length;
        await Task.Delay(200);
        Assert.Equal(rotated, new FileInfo(log + ".1").Length);
    }

    [Fact]
    public async Task Reopen_of_a_stopped_container_is_a_failed_precondition()
    {
        await using var host = new RuntimeHost();
        var rt = host.Runtime;
        await rt.CreateAsync(host.Request("done", host.Bundle("done", ["true"])), RuntimeHost.Timeout());
        await RuntimeHost.ExitOfAsync(rt, "done", () => rt.StartAsync("done", RuntimeHost.Timeout()), TimeSpan.FromSeconds(5));
        await Assert.ThrowsAsync<Crid.Core.Errors.FailedPreconditionException>(() => rt.ReopenLogAsync("done", RuntimeHost.Timeout()));
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        for (int i = 0; i < 250 && !condition(); i++)
        {
            await Task.Delay(20);
        }

        Assert.True(condition(), "timed out waiting");
    }
}
