using Crid.Core.Configuration;

namespace Crid.Core.Tests;

public sealed class ConfigLoaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-config-").FullName;
    private string Missing => Path.Combine(_dir, "absent.yaml");

    public void Dispose() => Directory.Delete(_dir, true);

    private string Write(string yaml)
    {
        var path = Path.Combine(_dir, "crid.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    [Fact]
    public void Defaults_when_nothing_is_given()
    {
        var o = ConfigLoader.Load([], Missing).Options;
        Assert.Equal("/run/crid/crid.sock", o.Listen);
        Assert.Equal("/var/lib/crid", o.StateDir);
        Assert.Equal("/var/run", o.NamespacesDir);
        Assert.Equal("info", o.LogLevel);
        Assert.Null(o.ConfigFile);
    }

    [Fact]
    public void The_default_file_is_read_when_it_exists()
    {
        var file = Write("state-dir: /srv/crid\n");
        var o = ConfigLoader.Load([], file).Options;
        Assert.Equal("/srv/crid", o.StateDir);
        Assert.Equal(file, o.ConfigFile);
    }

    [Fact]
    public void Flags_win_over_the_file_in_both_spellings()
    {
        var file = Write("listen: /a.sock\nstate-dir: /b\nlog-level: error\nruntime-handlers: [kata, runsc]\n");
        var o = ConfigLoader.Load(["--config", file, "--listen=/c.sock", "--log-level", "DEBUG"], Missing).Options;
        Assert.Equal("/c.sock", o.Listen);
        Assert.Equal("/b", o.StateDir);
        Assert.Equal("debug", o.LogLevel);
        Assert.Equal(["kata", "runsc"], o.RuntimeHandlers);
    }

    [Fact]
    public void An_empty_file_means_defaults() =>
        Assert.Equal("/var/lib/crid", ConfigLoader.Load(["--config", Write("# nothing\n")], Missing).Options.StateDir);

    [Theory]
    [InlineData("listen: /x\nfoo: bar\n", "crid.yaml:2: key \"foo\": unknown key")]
    [InlineData("\n\nstate-dir: var/lib\n", "crid.yaml:3: key \"state-dir\": \"var/lib\" is not an absolute path")]
    [InlineData("listen: {a: 1}\n", "crid.yaml:1: key \"listen\": expected a string, got a mapping")]
    [InlineData("runtime-handlers: kata\n", "crid.yaml:1: key \"runtime-handlers\": expected a list of strings")]
    [InlineData("log-level: loud\n", "crid.yaml:1: key \"log-level\": \"loud\" is not a log level")]
    [InlineData("listen: /a\nlisten: /b\n", "crid.yaml:2: key \"listen\": given twice")]
    [InlineData("- just\n- a list\n", "crid.yaml:1: the file must be a mapping")]
    [InlineData("listen: [\n", "crid.yaml:")]
    public void A_bad_file_is_one_line_naming_file_line_and_key(string yaml, string expected)
    {
        var file = Write(yaml);
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(["--config", file], Missing));
        Assert.StartsWith(file, e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData(new[] { "--state-dir", "rel" }, "--state-dir: \"rel\" is not an absolute path")]
    [InlineData(new[] { "--nope", "1" }, "unknown flag \"--nope\"")]
    [InlineData(new[] { "--listen" }, "--listen: a value is required")]
    [InlineData(new[] { "stray" }, "unexpected argument \"stray\"")]
    [InlineData(new[] { "--config", "rel.yaml" }, "--config: \"rel.yaml\" is not an absolute path")]
    public void Bad_flags_are_refused(string[] args, string expected) =>
        Assert.Contains(expected, Assert.Throws<ConfigException>(() => ConfigLoader.Load(args, Missing)).Message);

    [Fact]
    public void A_missing_explicit_config_file_is_an_error() =>
        Assert.Contains("cannot read", Assert.Throws<ConfigException>(() => ConfigLoader.Load(["--config", Missing], Missing)).Message);

    [Fact]
    public void Help_lists_every_key_with_its_default()
    {
        var help = ConfigLoader.Load(["--help"], Missing).HelpText!;
        foreach (var key in new[] { "--listen", "--state-dir", "--namespaces-dir", "--config", "--log-level", "--socket-group", "--runtime-handlers" })
            Assert.Contains(key, help);
        Assert.Contains("\"/var/lib/crid\"", help);
    }
}
