using Crid.Linux;

namespace Crid.Bench;

internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        Arguments a;
        try
        {
            a = Arguments.Parse(args);
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync($"crid-bench: {e.Message}");
            return 2;
        }

        // Everything the run creates lives under this folder, so one sweep removes it all.
        var dir = Directory.CreateTempSubdirectory("crid-bench-").FullName;
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            // Ctrl+C stops the phases and still runs the cleanup below.
            e.Cancel = true;
            cts.Cancel();
        };
        var progress = new Progress();
        progress.Note($"crid benchmark{(a.Quick ? " (quick)" : "")}: {a.Daemon} on {dir}");
        var machine = Report.DescribeMachine(a.Daemon, Report.LoadAverage(), a.LogLevel);
        try
        {
            Report report;
            using (var daemon = new DaemonUnderTest(a.Daemon, Path.Combine(dir, "daemon"), a.LogLevel, a.DaemonLog))
            {
                try
                {
                    report = await new Benchmark(a.Plan, daemon, Path.Combine(dir, "floor"), progress, cts.Token, a.Only).RunAsync();
                }
                catch (Exception) when (!cts.IsCancellationRequested)
                {
                    await Console.Error.WriteLineAsync($"crid-bench: the daemon's last lines:\n{daemon.LastLines}");
                    throw;
                }
            }
            foreach (var (k, v) in machine)
                report.Machine[k] = v;
            report.Machine["loadavg_end"] = Report.LoadAverage();
            report.WriteJson(a.Json, a.Plan);
            Console.Write(report.Table());
            progress.Note($"figures written to {a.Json}");
            return 0;
        }
        catch (Exception e) when (cts.IsCancellationRequested && e is OperationCanceledException or Grpc.Core.RpcException { StatusCode: Grpc.Core.StatusCode.Cancelled })
        {
            await Console.Error.WriteLineAsync("crid-bench: interrupted");
            return 130;
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync($"crid-bench: {e}");
            return 1;
        }
        finally
        {
            Sweep(dir);
        }
    }

    /// <summary>
    /// After the daemon is gone (disposed above, killed if it still ran): unmount every nsfs pin left
    /// under the folder (a failed run, a killed daemon), then delete the folder.
    /// </summary>
    private static void Sweep(string dir)
    {
        // The pods' /dev/shm tmpfs mounts (under their sandbox folders), deepest first.
        foreach (var mount in MountsUnder(dir, nsfs: false).OrderByDescending(m => m.Length))
        {
            try
            {
                PodShm.Unmount(mount);
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"crid-bench: cannot unmount {mount}: {e.Message}");
            }
        }
        foreach (var mount in MountsUnder(dir, nsfs: true))
        {
            try
            {
                PinnedNamespace.FromPath(mount).Remove();
            }
            catch (Exception e) when (e is SyscallException or ArgumentException)
            {
                Console.Error.WriteLine($"crid-bench: cannot remove the pin {mount}: {e.Message}");
            }
        }
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"crid-bench: cannot delete {dir}: {e.Message}");
        }
    }

    /// <summary>nsfs mount points (or all the others) under a folder, from /proc/self/mountinfo (proc(5): field 5 is the mount point).</summary>
    private static List<string> MountsUnder(string dir, bool nsfs)
    {
        var prefix = dir.TrimEnd('/') + "/";
        var result = new List<string>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (dash > 4 && dash + 1 < fields.Length && (fields[dash + 1] == "nsfs") == nsfs && fields[4].StartsWith(prefix, StringComparison.Ordinal))
                result.Add(fields[4]);
        }
        return result;
    }
}
