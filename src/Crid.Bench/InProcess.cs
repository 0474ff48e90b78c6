using System.Diagnostics;
using Crid.Core.Configuration;
using Crid.Core.Sandboxes;
using Microsoft.Extensions.Logging.Abstractions;
using Runtime.V1;

namespace Crid.Bench;

/// <summary>
/// The step between the floor and the daemon: crid's own SandboxManager in this process, on folders
/// of its own, with the benchmark pod. What it adds to the floor is validation, ids, the OCI spec,
/// the sandbox files and the record; what the daemon adds to it is gRPC, HTTP/2 and logging.
/// </summary>
internal static class InProcess
{
    public static (Samples Run, Samples Stop, Samples Remove) Measure(string dir, int iterations, int warmup, Progress progress)
    {
        var options = new CridOptions
        {
            Listen = Path.Combine(dir, "unused.sock"),
            StateDir = Path.Combine(dir, "state"),
            NamespacesDir = Path.Combine(dir, "ns"),
        };
        // The benchmark pod has pid CONTAINER: no infra process is ever started.
        using var manager = new SandboxManager(options, NullLogger<SandboxManager>.Instance, new InfraCommand("/bin/false", []));
        manager.RecoverAsync().GetAwaiter().GetResult();
        var run = new Samples();
        var stop = new Samples();
        var remove = new Samples();
        for (var i = 0; i < warmup + iterations; i++)
        {
            var request = new RunPodSandboxRequest { Config = Pods.Next() };
            var t0 = Stopwatch.GetTimestamp();
            var id = manager.RunAsync(request, CancellationToken.None).GetAwaiter().GetResult().Id;
            var t1 = Stopwatch.GetTimestamp();
            manager.StopAsync(id, CancellationToken.None).GetAwaiter().GetResult();
            var t2 = Stopwatch.GetTimestamp();
            manager.RemoveAsync(id, CancellationToken.None).GetAwaiter().GetResult();
            var t3 = Stopwatch.GetTimestamp();
            if (i >= warmup)
            {
                run.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                stop.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
                remove.Add(Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds);
            }
            progress.Tick("SandboxManager in-process", i + 1, warmup + iterations);
        }
        if (manager.Count != 0)
            throw new InvalidOperationException($"{manager.Count} sandboxes left in the in-process manager");
        return (run, stop, remove);
    }
}

/// <summary>
/// What writing a sandbox's files costs, as Run writes them (three files in one batch, then the
/// record), atomically without fsync and, alternating with it, with fsync as before: the price of
/// durability on this disk, measured in the same run as everything else.
/// </summary>
internal static class SandboxFiles
{
    public static (Samples Atomic, Samples Durable) Measure(string dir, int iterations, Progress progress)
    {
        var atomic = new Samples();
        var durable = new Samples();
        // Sizes of the benchmark pod's files: resolv.conf, hostname, config.json, sandbox.json.
        byte[] resolv = new byte[110], hostname = new byte[12], spec = new byte[3500], record = new byte[1100];
        foreach (var b in new[] { resolv, hostname, spec, record })
            Random.Shared.NextBytes(b);
        for (var i = 0; i < iterations * 2; i++)
        {
            var sync = i % 2 == 1;
            var folder = Directory.CreateDirectory(Path.Combine(dir, $"files-{i}")).FullName;
            var t0 = Stopwatch.GetTimestamp();
            Crid.Core.Storage.AtomicFiles.WriteAll(folder,
            [
                ("resolv.conf", resolv, Crid.Core.Storage.AtomicFiles.ReadableFile),
                ("hostname", hostname, Crid.Core.Storage.AtomicFiles.ReadableFile),
                ("config.json", spec, Crid.Core.Storage.AtomicFiles.PrivateFile),
            ], durable: sync);
            Crid.Core.Storage.AtomicFiles.Write(Path.Combine(folder, "sandbox.json"), record, Crid.Core.Storage.AtomicFiles.PrivateFile, durable: sync);
            (sync ? durable : atomic).Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            Directory.Delete(folder, recursive: true);
            progress.Tick("sandbox files, with and without fsync", i + 1, iterations * 2);
        }
        return (atomic, durable);
    }
}
