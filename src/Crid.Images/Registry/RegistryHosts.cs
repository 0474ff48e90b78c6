using System.Net;
using Crid.Core.Configuration;
using Crid.Images.References;

namespace Crid.Images.Registry;

/// <summary>Where a repository is fetched from: a host, the repository's path there, and http or https.</summary>
public sealed record RegistryEndpoint(string Host, string Repository, bool Insecure)
{
    public Uri BaseUri => new($"{(Insecure ? "http" : "https")}://{Host}/v2/");

    public override string ToString() => $"{(Insecure ? "http" : "https")}://{Host}/{Repository}";
}

/// <summary>
/// Applies the operator's <c>registries</c> list to a reference: the longest matching prefix
/// wins; its mirrors come first, then its location (which replaces the prefix, so the original
/// host is never contacted). Without a match the image's own host is used over HTTPS, except
/// loopback hosts, which are plain HTTP as with docker's default insecure 127.0.0.0/8.
/// </summary>
public sealed class RegistryHosts(IReadOnlyList<RegistryEntry> entries)
{
    /// <summary>docker.io is an alias: its registry API is served by registry-1.docker.io.</summary>
    public const string DockerHubApi = "registry-1.docker.io";

    public IReadOnlyList<RegistryEndpoint> Resolve(ImageReference reference)
    {
        var name = reference.Name;
        RegistryEntry? best = null;
        foreach (var e in entries)
        {
            if ((name == e.Prefix || name.StartsWith(e.Prefix + "/", StringComparison.Ordinal))
                && (best is null || e.Prefix.Length > best.Prefix.Length))
                best = e;
        }
        if (best is null)
            return [Endpoint(name, IsLoopback(reference.Domain))];
        var rest = name.Length == best.Prefix.Length ? "" : name[(best.Prefix.Length + 1)..];
        var list = best.Mirrors.Select(m => Endpoint(Join(m.Location, rest), m.Insecure)).ToList();
        list.Add(Endpoint(Join(best.Location ?? best.Prefix, rest), best.Insecure));
        return list;
    }

    private static string Join(string location, string rest) => rest.Length == 0 ? location : $"{location}/{rest}";

    private static RegistryEndpoint Endpoint(string name, bool insecure)
    {
        var slash = name.IndexOf('/');
        var host = slash < 0 ? name : name[..slash];
        var repo = slash < 0 ? "" : name[(slash + 1)..];
        if (host == ImageReference.DockerHub)
            host = DockerHubApi;
        return new RegistryEndpoint(host, repo, insecure);
    }

    private static bool IsLoopback(string domain)
    {
        var colon = domain.LastIndexOf(':');
        var host = colon > 0 && !domain.EndsWith(']') ? domain[..colon] : domain;
        host = host.Trim('[', ']');
        return host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }
}
