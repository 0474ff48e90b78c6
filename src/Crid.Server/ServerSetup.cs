using Crid.Core.Configuration;
using Crid.Core.Events;
using Crid.Core.Networking;
using Crid.Core.Sandboxes;
using Crid.Core.Stats;
using Crid.Images;
using Crid.Server.Services;
using Runtime.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

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
            // A layer's walk is reused for 10 s: kubelet asks every 10 to 15 s, crictl twice a second apart.
            new WritableLayerStats(TimeSpan.FromSeconds(10)), new NetworkStatsReader()));
        services.AddSingleton(sp =>
        {
            var bus = new ContainerEventBus();
            // Open event streams end when the daemon stops, instead of holding its shutdown up.
            sp.GetService<IHostApplicationLifetime>()?.ApplicationStopping.Register(bus.Close);
            return bus;
        });
        services.AddSingleton<IPodSnapshots, PodSnapshots>();
        services.AddSingleton<ContainerEvents>();
        services.AddImages(options);
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

    public static IEndpointRouteBuilder MapCriServices(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcService<CriRuntimeService>();
        endpoints.MapGrpcService<CriImageService>();
        return endpoints;
    }
}
