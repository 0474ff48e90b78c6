using System.Text;
using System.Text.Json;

namespace Crid.Images.Registry;

/// <summary>
/// What a pull may authenticate with: CRI's AuthConfig (username and password, or <c>auth</c> as
/// base64 "user:password", an identity token that is an OAuth2 refresh token, or a registry token
/// sent as it is), or an entry of the credentials file.
/// </summary>
public sealed record Credentials(string Username = "", string Password = "", string IdentityToken = "", string RegistryToken = "")
{
    public bool HasPassword => Username.Length > 0;

    // A record prints every member: never the secrets, should one ever reach a log line.
    public override string ToString() => $"Credentials {{ Username = {Username} }}";

    /// <summary>Decodes CRI's <c>auth</c> field (base64 of "user:password"); null when it is not that.</summary>
    public static Credentials? FromAuth(string auth)
    {
        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(auth));
            var colon = text.IndexOf(':');
            return colon <= 0 ? null : new Credentials(text[..colon], text[(colon + 1)..]);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}

/// <summary>
/// The default credentials file, Docker's config.json shape: <c>{"auths": {"host": {"auth": "..."}}}</c>
/// (also <c>username</c>/<c>password</c>/<c>identitytoken</c>). Re-read when it changes, so rotating a
/// secret needs no restart.
/// </summary>
public sealed class CredentialsFile(string path)
{
    private (DateTime Stamp, Dictionary<string, Credentials> Entries)? _cache;
    private readonly Lock _lock = new();

    public Credentials? For(string host)
    {
        if (path.Length == 0)
            return null;
        var entries = Load();
        foreach (var key in Keys(host))
        {
            if (entries.TryGetValue(key, out var c))
                return c;
        }
        return null;
    }

    private static IEnumerable<string> Keys(string host)
    {
        yield return host;
        yield return "https://" + host;
        yield return "http://" + host;
        if (host is RegistryHosts.DockerHubApi or "docker.io" or "index.docker.io")
        {
            yield return "https://index.docker.io/v1/";
            yield return "docker.io";
            yield return "index.docker.io";
        }
    }

    private Dictionary<string, Credentials> Load()
    {
        lock (_lock)
        {
            DateTime stamp;
            try { stamp = File.GetLastWriteTimeUtc(path); }
            catch (IOException) { return []; }
            if (_cache is { } c && c.Stamp == stamp)
                return c.Entries;
            var entries = new Dictionary<string, Credentials>(StringComparer.Ordinal);
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
                if (doc.RootElement.TryGetProperty("auths", out var auths) && auths.ValueKind == JsonValueKind.Object)
                {
                    foreach (var p in auths.EnumerateObject())
                    {
                        if (p.Value.ValueKind != JsonValueKind.Object)
                            continue;
                        var auth = Manifest(p.Value, "auth");
                        var creds = auth.Length > 0 ? Credentials.FromAuth(auth) : null;
                        creds ??= new Credentials(Manifest(p.Value, "username"), Manifest(p.Value, "password"));
                        creds = creds with { IdentityToken = Manifest(p.Value, "identitytoken") };
                        entries[p.Name.TrimEnd('/')] = creds;
                        entries[p.Name] = creds;
                    }
                }
            }
            catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
            {
                throw new RegistryException($"the credentials file {path} cannot be read: {e.Message}");
            }
            _cache = (stamp, entries);
            return entries;
        }
    }

    private static string Manifest(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() ?? "" : "";
}
