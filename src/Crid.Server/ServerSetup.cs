using Crid.Core.Configuration;
using Crid.Core.Networking;
using Crid.Core.Sandboxes;
using Crid.Images;
using Crid.Server.Services;
using Crid.Streaming;
using Runtime.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
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
        services.AddImages(options);
        // Until the container lifecycle registers its own, there are no containers to exec in.
        services.TryAddSingleton<IContainerStreams, NoContainers>();
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
