using Crid.Core.Configuration;
using Crid.Core.Images;
using Crid.Images.Pull;
using Crid.Images.Registry;
using Crid.Images.Store;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Crid.Images;

/// <summary>The image store and puller as singletons of the daemon's container.</summary>
public static class ImageServices
{
    /// <summary>The store's folder under the state dir.</summary>
    public static string StoreRoot(CridOptions options) => Path.Combine(options.StateDir, "images");

    public static IServiceCollection AddImages(this IServiceCollection services, CridOptions options)
    {
        services.AddSingleton(sp => new ImageStore(StoreRoot(options), sp.GetRequiredService<ILogger<ImageStore>>()));
        services.AddSingleton<IContainerImages>(sp => sp.GetRequiredService<ImageStore>());
        services.AddSingleton(new RegistryHosts(options.Registries));
        services.AddSingleton(_ => new RegistryClient(TimeSpan.FromSeconds(options.PullIdleTimeoutSeconds)));
        services.AddSingleton(new CredentialsFile(options.RegistryCredentials));
        services.AddSingleton<ImagePuller>();
        return services;
    }
}
