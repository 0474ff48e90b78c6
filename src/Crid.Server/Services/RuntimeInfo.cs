using System.Reflection;

namespace Crid.Server.Services;

internal static class RuntimeInfo
{
    public const string Name = "crid";

    /// <summary>The CRI Version call's own API version field: crictl refuses anything but a v1 runtime.</summary>
    public const string KubeletApiVersion = "0.1.0";

    public const string ApiVersion = "v1";

    public static readonly string ProductVersion =
        typeof(RuntimeInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.1.0";
}
