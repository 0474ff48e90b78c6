using System.Text.RegularExpressions;
using Crid.Core.Errors;

namespace Crid.Images.References;

/// <summary>
/// A normalised image reference, as docker and kubelet read one (distribution/reference's
/// ParseNormalizedNamed): a first component with a '.' or ':' or equal to "localhost" is a registry
/// host, anything else lives on docker.io, where one-component names are under "library/".
/// <c>busybox</c> is <c>docker.io/library/busybox:latest</c>.
/// </summary>
public sealed partial record ImageReference
{
    public const string DockerHub = "docker.io";

    /// <summary>The registry host, with its port: <c>docker.io</c>, <c>localhost:5000</c>.</summary>
    public required string Domain { get; init; }

    /// <summary>The repository path on that registry: <c>library/busybox</c>.</summary>
    public required string Path { get; init; }

    /// <summary>The tag; "latest" when the reference gives neither tag nor digest.</summary>
    public string? Tag { get; init; }

    /// <summary><c>sha256:&lt;hex&gt;</c> when the reference pins a manifest.</summary>
    public string? Digest { get; init; }

    /// <summary><c>domain/path</c>, the repository name without tag or digest.</summary>
    public string Name => $"{Domain}/{Path}";

    /// <summary><c>name:tag</c>, or null for a digest-only reference.</summary>
    public string? TagReference => Tag is null ? null : $"{Name}:{Tag}";

    public string DigestReference(string digest) => $"{Name}@{digest}";

    public override string ToString() => Name + (Tag is null ? "" : ":" + Tag) + (Digest is null ? "" : "@" + Digest);

    /// <summary>Parses and normalises; a malformed reference is an InvalidArgument naming <paramref name="field"/>.</summary>
    public static ImageReference Parse(string text, string field = "image.image")
    {
        if (TryParse(text, out var reference, out var problem))
            return reference;
        throw new InvalidArgumentException(field, problem);
    }

    public static bool TryParse(string text, out ImageReference reference, out string problem)
    {
        reference = null!;
        problem = "";
        if (string.IsNullOrEmpty(text))
        {
            problem = "an image reference is required";
            return false;
        }
        if (text.Length > 512 || text.Any(char.IsWhiteSpace))
        {
            problem = $"\"{Shorten(text)}\" is not an image reference (too long or with spaces)";
            return false;
        }
        if (IsImageId(text))
        {
            problem = $"\"{text}\" is an image id, not a reference that names a repository";
            return false;
        }
        var rest = text;
        string? digest = null;
        var at = rest.IndexOf('@');
        if (at >= 0)
        {
            digest = rest[(at + 1)..];
            rest = rest[..at];
            if (!IsDigest(digest))
            {
                problem = $"\"{text}\": the digest \"{digest}\" is not sha256:<64 lower-case hex digits>";
                return false;
            }
        }
        string? tag = null;
        var colon = rest.LastIndexOf(':');
        if (colon > rest.LastIndexOf('/'))
        {
            tag = rest[(colon + 1)..];
            rest = rest[..colon];
            if (!TagPattern().IsMatch(tag))
            {
                problem = $"\"{text}\": the tag \"{tag}\" is not valid (letters, digits, '_', '.', '-'; at most 128)";
                return false;
            }
        }
        string domain, path;
        var slash = rest.IndexOf('/');
        var first = slash < 0 ? rest : rest[..slash];
        if (slash >= 0 && (first.Contains('.') || first.Contains(':') || first == "localhost"))
        {
            domain = first;
            path = rest[(slash + 1)..];
        }
        else
        {
            domain = DockerHub;
            path = rest;
        }
        if (domain == "index.docker.io")
            domain = DockerHub;
        if (domain == DockerHub && !path.Contains('/'))
            path = "library/" + path;
        if (!DomainPattern().IsMatch(domain))
        {
            problem = $"\"{text}\": \"{domain}\" is not a registry host";
            return false;
        }
        if (path.Length == 0 || path.Split('/').Any(c => !ComponentPattern().IsMatch(c)))
        {
            problem = $"\"{text}\": the repository \"{path}\" is not valid (lower-case letters, digits and separators)";
            return false;
        }
        if (domain.Length + 1 + path.Length > 255)
        {
            problem = $"\"{Shorten(text)}\": the repository name is longer than 255 characters";
            return false;
        }
        reference = new ImageReference
        {
            Domain = domain,
            Path = path,
            Tag = tag ?? (digest is null ? "latest" : null),
            Digest = digest,
        };
        return true;
    }

    /// <summary><c>sha256:&lt;64 hex&gt;</c> or the bare 64 hex digits: how kubelet and crictl name an image by id.</summary>
    public static bool IsImageId(string text) =>
        (text.Length == 64 && IsHex(text)) || (text.Length == 71 && text.StartsWith("sha256:", StringComparison.Ordinal) && IsHex(text.AsSpan(7)));

    public static bool IsDigest(string text) =>
        text.Length == 71 && text.StartsWith("sha256:", StringComparison.Ordinal) && IsHex(text.AsSpan(7));

    internal static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
                return false;
        }
        return true;
    }

    private static string Shorten(string s) => s.Length <= 80 ? s : s[..77] + "...";

    [GeneratedRegex(@"^[\w][\w.-]{0,127}$")]
    private static partial Regex TagPattern();

    // distribution/reference: a host name of dot-separated labels, or a bracketed IPv6 address, then an optional port.
    [GeneratedRegex(@"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")]
    private static partial Regex DomainPattern();

    [GeneratedRegex(@"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")]
    private static partial Regex ComponentPattern();
}
