using Crid.Core.Configuration;
using Crid.Core.Errors;
using Crid.Images.References;
using Crid.Images.Registry;

namespace Crid.Images.Tests;

/// <summary>Reference handling only parses: no test here contacts a registry.</summary>
public sealed class ImageReferenceTests
{
    [Theory]
    [InlineData("busybox", "docker.io/library/busybox:latest")]
    [InlineData("busybox:1.36", "docker.io/library/busybox:1.36")]
    [InlineData("library/busybox", "docker.io/library/busybox:latest")]
    [InlineData("docker.io/busybox", "docker.io/library/busybox:latest")]
    [InlineData("index.docker.io/library/busybox:1", "docker.io/library/busybox:1")]
    [InlineData("team/app", "docker.io/team/app:latest")]
    [InlineData("localhost/app", "localhost/app:latest")]
    [InlineData("localhost:5000/a/b/c:v1.2-x_y", "localhost:5000/a/b/c:v1.2-x_y")]
    [InlineData("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9")]
    [InlineData("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest")]
    [InlineData("[::1]:5000/x:t", "[::1]:5000/x:t")]
    [InlineData("busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("q.io/a:t@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "q.io/a:t@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    public void Normalises_as_docker_does(string text, string expected) =>
        Assert.Equal(expected, ImageReference.Parse(text).ToString());

    [Theory]
    [InlineData("", "required")]
    [InlineData("Busybox", "repository")]
    [InlineData("busy box", "spaces")]
    [InlineData("busybox:", "tag")]
    [InlineData("busybox:-x", "tag")]
    [InlineData("busybox@sha256:abc", "digest")]
    [InlineData("busybox@md5:0123", "digest")]
    [InlineData("a//b", "repository")]
    [InlineData("host:5000/", "repository")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "image id")]
    [InlineData("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "image id")]
    public void Refuses_malformed_references_naming_the_field(string text, string problem)
    {
        var e = Assert.Throws<InvalidArgumentException>(() => ImageReference.Parse(text));
        Assert.Equal("image.image", e.Field);
        Assert.Contains(problem, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Tag_and_digest_references_of_one_name()
    {
        var r = ImageReference.Parse("busybox:1.36");
        Assert.Equal("docker.io/library/busybox:1.36", r.TagReference);
        Assert.Equal("docker.io/library/busybox@sha256:x", r.DigestReference("sha256:x"));
        Assert.Null(ImageReference.Parse("busybox@sha256:" + new string('a', 64)).TagReference);
    }

    [Fact]
    public void Registries_remap_mirror_and_default()
    {
        var hosts = new RegistryHosts([
            new RegistryEntry { Prefix = "registry.k8s.io", Location = "127.0.0.1:5000", Insecure = true },
            new RegistryEntry { Prefix = "quay.io/team", Location = "mirror.local/q", Mirrors = [new RegistryMirror("127.0.0.1:6000", true)] },
            new RegistryEntry { Prefix = "docker.io", Location = "localhost:7000", Insecure = true },
        ]);
        Assert.Equal([new RegistryEndpoint("127.0.0.1:5000", "e2e-test-images/busybox", true)],
            hosts.Resolve(ImageReference.Parse("registry.k8s.io/e2e-test-images/busybox:1.29")));
        Assert.Equal([new RegistryEndpoint("127.0.0.1:6000", "app", true), new RegistryEndpoint("mirror.local", "q/app", false)],
            hosts.Resolve(ImageReference.Parse("quay.io/team/app")));
        // Only whole path components match: quay.io/teams is not under quay.io/team.
        Assert.Equal([new RegistryEndpoint("quay.io", "teams/app", false)], hosts.Resolve(ImageReference.Parse("quay.io/teams/app")));
        Assert.Equal([new RegistryEndpoint("localhost:7000", "library/busybox", true)], hosts.Resolve(ImageReference.Parse("busybox")));
        // No entry: the image's own host over HTTPS; docker.io's API host; loopback is plain HTTP.
        var none = new RegistryHosts([]);
        Assert.Equal([new RegistryEndpoint(RegistryHosts.DockerHubApi, "library/busybox", false)], none.Resolve(ImageReference.Parse("busybox")));
        Assert.Equal([new RegistryEndpoint("localhost:5000", "x", true)], none.Resolve(ImageReference.Parse("localhost:5000/x")));
        Assert.Equal([new RegistryEndpoint("gcr.io", "x", false)], none.Resolve(ImageReference.Parse("gcr.io/x")));
    }

    [Fact]
    public void Challenge_parameters_with_quotes_and_commas()
    {
        var p = RegistryClient.ParseChallenge("realm=\"https://auth.example/token\",service=\"reg, one\",scope=\"repository:a/b:pull,push\"");
        Assert.Equal("https://auth.example/token", p["realm"]);
        Assert.Equal("reg, one", p["service"]);
        Assert.Equal("repository:a/b:pull,push", p["scope"]);
    }
}
