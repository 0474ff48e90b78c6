using Crid.Core.Configuration;
using Crid.Core.Containers;
using Crid.Core.Events;
using Crid.Core.Images;
using Crid.Core.Networking;
using Crid.Core.Sandboxes;
using Crid.Core.Stats;
using Crid.Images;
using Crid.Runtime;
using Crid.Server.Services;
using Crid.Streaming;
using Runtime.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Crid.Server;

/// <summary>Wires the CRI services into an ASP.NET Core host.</summary>
public static class ServerSetup
{
    public static IServiceCollection AddCriServices(this IServiceCollection services, CridOptions options)
    {
        services.AddSingleton(options);
        services.AddSingleton<PodNetwork>();
        services.AddSingleton<NetworkStatus>();
        services.AddSingleton<SandboxManager>();
        // Read once: the cgroup mounts do not change under a running daemon (runc reads them the same way).
        services.AddSingleton(_ => new StatsCollector(CgroupLayout.FromHost(), new CgroupStatsReader(), new CpuRates(),
            // The writable layers' figures are at most 30 s old: a call gives a walk's figures younger
            // than 30 s at once and starts a new walk in the background when they are older than 5 s,
            // so kubelet (every 10 to 15 s) gets what its previous call had measured, and only a layer
            // never measured (or not asked about for 30 s) is waited for (WritableLayerStats).
            new WritableLayerStats(TimeSpan.FromSeconds(30), refreshAfter: TimeSpan.FromSeconds(5)), new NetworkStatsReader()));
        services.AddSingleton(sp =>
        {
            var bus = new ContainerEventBus(options.EventsQueueCapacity is > 0 and <= int.MaxValue ? (int)options.EventsQueueCapacity : ContainerEventBus.DefaultQueueCapacity);
            // Open event streams end when the daemon stops, instead of holding its shutdown up.
            sp.GetService<IHostApplicationLifetime>()?.ApplicationStopping.Register(bus.Close);
            return bus;
        });
        services.AddSingleton<IPodSnapshots, PodSnapshots>();
        services.AddSingleton<ContainerEvents>();
        services.AddImages(options);
        services.AddSingleton(sp => Runtimes(options, sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton<ContainerManager>();
        // A test may register its own first.
        services.TryAddSingleton<IContainerStreams, ContainerStreams>();
        services.AddSingleton<IPodNetworks, SandboxNetworks>();
        services.AddSingleton(sp => new StreamingServer(StreamingOptionsOf(options), sp.GetRequiredService<IContainerStreams>(),
            sp.GetRequiredService<IPodNetworks>(), sp.GetRequiredService<ILoggerFactory>()));
        services.AddGrpc(o =>
        {
            o.Interceptors.Add<ErrorInterceptor>();
            // kubelet sends large ListPodSandbox/ListContainers answers' requests rarely; keep the gRPC default limits.
            o.EnableDetailedErrors = false;
        });
        // Unparseable requests are InvalidArgument, not Unknown: see StrictRequestParsing.
        services.RemoveDefaultMethodProvider();
        services.AddStrictRequestParsing<CriRuntimeService>(RuntimeService.BindService);
        services.AddStrictRequestParsing<CriImageService>(ImageService.BindService);
        return services;
    }

    /// <summary>
    /// One conmon + runc driver per runtime handler, each over its own folder of the runtime root
    /// (its exit watcher reports every exit file there, so handlers never share one).
    /// </summary>
    private static ContainerRuntimes Runtimes(CridOptions options, ILoggerFactory logs) =>
        new(options.Handlers().ToDictionary(h => h.Name, h => (IContainerRuntime)new ConmonRuntime(RuntimeOptionsOf(options, h), logs.CreateLogger<ConmonRuntime>())));

    public static RuntimeOptions RuntimeOptionsOf(CridOptions options, ConfiguredHandler handler)
    {
        var dir = Path.Combine(options.RuntimeRoot, handler.StateFolderName);
        return new RuntimeOptions
        {
            ConmonPath = options.ConmonPath,
            RuntimePath = handler.RuntimePath,
            StateDir = dir,
            RuntimeRoot = Path.Combine(dir, "runc"),
            TestOnlyCrashAt = options.TestOnlyCrashAt,
            MonitorLogLevel = options.LogLevel switch { "trace" => "trace", "debug" => "debug", "warning" => "warn", "error" or "critical" or "none" => "error", _ => "info" },
        };
    }

    private static StreamingOptions StreamingOptionsOf(CridOptions options) => new()
    {
        Address = System.Net.IPAddress.Parse(options.StreamingAddress),
        Port = options.StreamingPort,
        IdleTimeout = TimeSpan.FromSeconds(options.StreamingIdleTimeoutSeconds),
    };

    public static IEndpointRouteBuilder MapCriServices(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcService<CriRuntimeService>();
        endpoints.MapGrpcService<CriImageService>();
        return endpoints;
    }
}
