using System.Diagnostics;
using System.Text.Json;
using Crid.Linux;
using Runtime.V1;

namespace Crid.Bench;

/// <summary>
/// ExecSync of <c>busybox true</c> through the daemon's RPC (a kubelet exec probe: the socket, the
/// server, the container manager, conmon/runc) against its floor, <c>runc exec</c> of the same
/// command in the same container under the daemon's runc root, alternating one of each so both see
/// the same machine. The container is a pod's, made by the daemon from an image it pulled.
/// </summary>
internal static class ExecRpc
{
    private const string Runc = "/usr/sbin/runc";

    public static async Task<(Samples Rpc, Samples Runc)> MeasureAsync(DaemonUnderTest daemon, string image, int iterations, int warmup, Progress progress, CancellationToken ct)
    {
        using var channel = DaemonUnderTest.CreateChannel(daemon.Socket);
        var runtime = new RuntimeService.RuntimeServiceClient(channel);
        var images = new ImageService.ImageServiceClient(channel);
        await images.PullImageAsync(new PullImageRequest { Image = new ImageSpec { Image = image } }, cancellationToken: ct);
        var pod = new PodSandboxConfig
        {
            Metadata = new PodSandboxMetadata { Name = "bench-exec", Namespace = "bench", Uid = Guid.NewGuid().ToString("N") },
            Linux = new LinuxPodSandboxConfig(),
        };
        var podId = (await runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = pod }, cancellationToken: ct)).PodSandboxId;
        try
        {
            var id = (await runtime.CreateContainerAsync(new CreateContainerRequest
            {
                PodSandboxId = podId,
                SandboxConfig = pod,
                Config = new ContainerConfig
                {
                    Metadata = new ContainerMetadata { Name = "exec" },
                    Image = new ImageSpec { Image = image },
                    Command = { "/bin/busybox", "sleep", "100000" },
                    Linux = new LinuxContainerConfig(),
                },
            }, cancellationToken: ct)).ContainerId;
            await runtime.StartContainerAsync(new StartContainerRequest { ContainerId = id }, cancellationToken: ct);
            // runc's state of the default handler: <runtime-root>/default/runc (ServerSetup.RuntimeOptionsOf).
            var status = await runtime.StatusAsync(new StatusRequest { Verbose = true }, cancellationToken: ct);
            using var config = JsonDocument.Parse(status.Info["config"]);
            var root = Path.Combine(config.RootElement.GetProperty("runtime-root").GetString()!, "default", "runc");

            var rpc = new Samples();
            var floor = new Samples();
            for (var i = 0; i < warmup + iterations; i++)
            {
                ct.ThrowIfCancellationRequested();
                var t0 = Stopwatch.GetTimestamp();
                var r = await runtime.ExecSyncAsync(new ExecSyncRequest { ContainerId = id, Cmd = { "/bin/busybox", "true" }, Timeout = 10 }, cancellationToken: ct);
                var t1 = Stopwatch.GetTimestamp();
                var child = ChildProcess.Start(new SpawnOptions { Executable = Runc, Args = [Runc, "--root", root, "exec", id, "/bin/busybox", "true"] });
                var exit = await child.Exited;
                var t2 = Stopwatch.GetTimestamp();
                if (r.ExitCode != 0 || exit.Code != 0)
                    throw new InvalidOperationException($"exec of true failed: ExecSync {r.ExitCode} ({r.Stderr.ToStringUtf8()}), runc exec {exit}");
                if (i >= warmup)
                {
                    rpc.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
                    floor.Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
                }
                progress.Tick("ExecSync RPC against runc exec", i + 1, warmup + iterations);
            }
            return (rpc, floor);
        }
        finally
        {
            await runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = podId }, cancellationToken: CancellationToken.None);
            await runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = podId }, cancellationToken: CancellationToken.None);
            await images.RemoveImageAsync(new RemoveImageRequest { Image = new ImageSpec { Image = image } }, cancellationToken: CancellationToken.None);
        }
    }
}
