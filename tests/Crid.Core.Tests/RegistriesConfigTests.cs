using Crid.Core.Configuration;

namespace Crid.Core.Tests;

public sealed class RegistriesConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private CridOptions Load(string yaml)
    {
        var path = Path.Combine(_dir, "crid.yaml");
        File.WriteAllText(path, yaml);
        return ConfigLoader.Load(["--config", path], Path.Combine(_dir, "absent")).Options;
    }

    [Fact]
    public void The_issue_shape_works_exactly()
    {
        var o = Load("""
            registries:
              - {prefix: registry.k8s.io, location: localhost:5000, insecure: true}
              - {prefix: gcr.io, location: localhost:5000, insecure: true}
            """);
        Assert.Equal(2, o.Registries.Count);
        Assert.Equal(new RegistryEntry { Prefix = "registry.k8s.io", Location = "localhost:5000", Insecure = true, Mirrors = o.Registries[0].Mirrors }, o.Registries[0]);
        Assert.Equal("gcr.io", o.Registries[1].Prefix);
        Assert.Empty(o.Registries[1].Mirrors);
    }

    [Fact]
    public void Mirrors_as_strings_or_mappings_and_the_other_image_keys()
    {
        var o = Load("""
            registries:
              - prefix: docker.io
                mirrors: [mirror.local:5000, {location: 127.0.0.1:6000, insecure: true}]
            registry-credentials: /etc/crid/auth.json
            pull-idle-timeout: 15
            """);
        var e = Assert.Single(o.Registries);
        Assert.Null(e.Location);
        Assert.Equal([new RegistryMirror("mirror.local:5000", false), new RegistryMirror("127.0.0.1:6000", true)], e.Mirrors);
        Assert.Equal("/etc/crid/auth.json", o.RegistryCredentials);
        Assert.Equal(15, o.PullIdleTimeoutSeconds);
    }

    [Theory]
    [InlineData("registries: localhost:5000\n", ":1: key \"registries\": expected a list")]
    [InlineData("registries:\n  - {location: a.io}\n", ":2: key \"registries\": \"prefix\" is required")]
    [InlineData("registries:\n  - {prefix: a.io, insecure: maybe}\n", ":2: key \"registries\": \"insecure\": expected true or false")]
    [InlineData("registries:\n  - {prefix: a.io, colour: red}\n", ":2: key \"registries\": unknown key \"colour\"")]
    [InlineData("registries:\n  - {prefix: 'http://a.io'}\n", "without a scheme")]
    [InlineData("registries:\n  - {prefix: a.io}\n  - {prefix: a.io}\n", ":3: key \"registries\": prefix \"a.io\" is given twice")]
    [InlineData("registries:\n  - {prefix: a.io, mirrors: [{insecure: true}]}\n", "a mirror needs a \"location\"")]
    public void Bad_entries_name_the_file_line_and_key(string yaml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => Load(yaml));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith(_dir, e.Message);
    }

    [Fact]
    public void The_effective_config_shows_registries_in_the_file_shape()
    {
        var o = Load("registries:\n  - {prefix: a.io, location: 127.0.0.1:5000, insecure: true, mirrors: [m.io]}\nregistry-credentials: /etc/crid/auth.json\n");
        using var doc = System.Text.Json.JsonDocument.Parse(ConfigLoader.ToJson(o));
        var yaml = $"registries: {doc.RootElement.GetProperty("registries").GetRawText()}\nregistry-credentials: {doc.RootElement.GetProperty("registry-credentials").GetRawText()}\n";
        var back = Load(yaml);
        Assert.Equal(o.Registries[0] with { Mirrors = [] }, back.Registries[0] with { Mirrors = [] });
        Assert.Equal(o.Registries[0].Mirrors, back.Registries[0].Mirrors);
        Assert.Equal("/etc/crid/auth.json", back.RegistryCredentials);
    }

    [Fact]
    public void Registries_is_not_a_flag() =>
        Assert.Contains("config file only", Assert.Throws<ConfigException>(() => ConfigLoader.Load(["--registries", "x"], "/nonexistent")).Message);
}
