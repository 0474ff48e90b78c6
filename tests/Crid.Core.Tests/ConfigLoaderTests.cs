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
        Assert.Equal("/etc/cni/net.d", o.CniConfDir);
        Assert.Equal(["/opt/cni/bin", "/usr/lib/cni"], o.CniBinDirs);
        Assert.Equal(60, o.CniTimeoutSeconds);
        Assert.Equal("127.0.0.1", o.StreamingAddress);
        Assert.Equal(0, o.StreamingPort);
        Assert.Equal(14400, o.StreamingIdleTimeoutSeconds);
        Assert.Null(o.ConfigFile);
    }

    [Fact]
    public void The_streaming_keys_come_from_file_and_flags()
    {
        var file = Write("streaming-address: \"::1\"\nstreaming-port: 10010\nstreaming-idle-timeout: 600\n");
        var o = ConfigLoader.Load(["--config", file], Missing).Options;
        Assert.Equal("::1", o.StreamingAddress);
        Assert.Equal(10010, o.StreamingPort);
        Assert.Equal(600, o.StreamingIdleTimeoutSeconds);
        o = ConfigLoader.Load(["--config", file, "--streaming-address", "0.0.0.0", "--streaming-port=0"], Missing).Options;
        Assert.Equal("0.0.0.0", o.StreamingAddress);
        Assert.Equal(0, o.StreamingPort);
    }

    [Theory]
    [InlineData("streaming-address: localhost\n", "key \"streaming-address\": \"localhost\" is not an IP address")]
    [InlineData("streaming-address: 1\n", "\"1\" is not an IP address")]
    [InlineData("streaming-address: 300.1.1.1\n", "\"300.1.1.1\" is not an IP address")]
    [InlineData("streaming-port: 65536\n", "key \"streaming-port\": \"65536\" is not a port (0-65535)")]
    [InlineData("streaming-port: -1\n", "\"-1\" is not a port")]
    [InlineData("streaming-port: http\n", "\"http\" is not a port")]
    [InlineData("streaming-idle-timeout: 0\n", "key \"streaming-idle-timeout\": \"0\" is not a positive number")]
    public void Bad_streaming_keys_are_one_line_naming_the_key(string yaml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(["--config", Write(yaml)], Missing));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("cni-bin-dir: [/opt/cni/bin, /usr/lib/cni/]\n", new[] { "/opt/cni/bin", "/usr/lib/cni" })]
    [InlineData("cni-bin-dir: /usr/lib/cni\n", new[] { "/usr/lib/cni" })]
    [InlineData("cni-bin-dir: /a, /b\n", new[] { "/a", "/b" })]
    public void The_cni_bin_dir_is_a_list_or_a_string_in_yaml(string yaml, string[] expected) =>
        Assert.Equal(expected, ConfigLoader.Load(["--config", Write(yaml)], Missing).Options.CniBinDirs);

    [Fact]
    public void The_cni_keys_come_from_file_and_flags()
    {
        var file = Write("cni-conf-dir: /srv/cni/\ncni-timeout: 2.5\ncni-bin-dir: [/x]\n");
        var o = ConfigLoader.Load(["--config", file], Missing).Options;
        Assert.Equal("/srv/cni", o.CniConfDir);
        Assert.Equal(2.5, o.CniTimeoutSeconds);
        Assert.Equal(["/x"], o.CniBinDirs);
        o = ConfigLoader.Load(["--config", file, "--cni-bin-dir", "/usr/lib/cni,/opt/cni/bin", "--cni-timeout=7", "--cni-conf-dir", "/c"], Missing).Options;
        Assert.Equal(["/usr/lib/cni", "/opt/cni/bin"], o.CniBinDirs);
        Assert.Equal(7, o.CniTimeoutSeconds);
        Assert.Equal("/c", o.CniConfDir);
    }

    [Theory]
    [InlineData("cni-timeout: 0\n", "key \"cni-timeout\": \"0\" is not a positive number")]
    [InlineData("cni-timeout: -3\n", "\"-3\" is not a positive number")]
    [InlineData("cni-timeout: soon\n", "\"soon\" is not a positive number")]
    [InlineData("cni-timeout: NaN\n", "\"NaN\" is not a positive number")]
    [InlineData("cni-timeout: 1e10\n", "1e10 is more than 86400 seconds")]
    [InlineData("cni-timeout: [1]\n", "key \"cni-timeout\": expected a string, got a list")]
    [InlineData("cni-bin-dir: [/a, opt/cni]\n", "key \"cni-bin-dir\": \"opt/cni\" is not an absolute path")]
    [InlineData("cni-bin-dir: []\n", "key \"cni-bin-dir\": at least one folder is required")]
    [InlineData("cni-bin-dir: {a: 1}\n", "key \"cni-bin-dir\": expected a list of strings")]
    [InlineData("cni-conf-dir: net.d\n", "key \"cni-conf-dir\": \"net.d\" is not an absolute path")]
    public void Bad_cni_keys_are_one_line_naming_the_key(string yaml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(["--config", Write(yaml)], Missing));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
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

    [Theory]
    [InlineData("runtime-handlers: kata\n", new[] { "kata" })]
    [InlineData("runtime-handlers: kata,runsc\n", new[] { "kata", "runsc" })]
    [InlineData("runtime-handlers: [kata]\n", new[] { "kata" })]
    public void Runtime_handlers_take_one_string_like_cni_bin_dir(string yaml, string[] expected) =>
        Assert.Equal(expected, ConfigLoader.Load(["--config", Write(yaml)], Missing).Options.RuntimeHandlers);

    [Fact]
    public void The_effective_config_is_shown_with_the_yaml_keys()
    {
        var o = ConfigLoader.Load(["--config", Write("runtime-handlers: kata\ncni-timeout: 5\n")], Missing).Options;
        using var doc = System.Text.Json.JsonDocument.Parse(ConfigLoader.ToJson(o));
        var root = doc.RootElement;
        // Each shown key reads back as a key of the file: the same names, the same shapes.
        var yaml = new System.Text.StringBuilder();
        foreach (var p in root.EnumerateObject().Where(p => p.Name != "config"))
            yaml.Append(p.Name).Append(": ").Append(p.Value.GetRawText()).Append('\n');
        var back = ConfigLoader.Load(["--config", Write(yaml.ToString())], Missing).Options;
        Assert.Equal(o with { ConfigFile = null }, back with { ConfigFile = null, RuntimeHandlers = o.RuntimeHandlers, CniBinDirs = o.CniBinDirs });
        Assert.Equal(o.RuntimeHandlers, back.RuntimeHandlers);
        Assert.Equal(o.CniBinDirs, back.CniBinDirs);
        Assert.Equal(5, root.GetProperty("cni-timeout").GetDouble());
    }

    [Fact]
    public void An_empty_file_means_defaults() =>
        Assert.Equal("/var/lib/crid", ConfigLoader.Load(["--config", Write("# nothing\n")], Missing).Options.StateDir);

    [Theory]
    [InlineData("listen: /x\nfoo: bar\n", "crid.yaml:2: key \"foo\": unknown key")]
    [InlineData("\n\nstate-dir: var/lib\n", "crid.yaml:3: key \"state-dir\": \"var/lib\" is not an absolute path")]
    [InlineData("listen: {a: 1}\n", "crid.yaml:1: key \"listen\": expected a string, got a mapping")]
    [InlineData("runtime-handlers: {kata: 1}\n", "crid.yaml:1: key \"runtime-handlers\": expected a list of strings")]
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
    [InlineData(new[] { "--cni-timeout", "0" }, "--cni-timeout: \"0\" is not a positive number")]
    [InlineData(new[] { "--cni-bin-dir", "/a,b" }, "--cni-bin-dir: \"b\" is not an absolute path")]
    [InlineData(new[] { "--cni-bin-dir", "," }, "--cni-bin-dir: at least one folder is required")]
    public void Bad_flags_are_refused(string[] args, string expected) =>
        Assert.Contains(expected, Assert.Throws<ConfigException>(() => ConfigLoader.Load(args, Missing)).Message);

    [Fact]
    public void A_missing_explicit_config_file_is_an_error() =>
        Assert.Contains("cannot read", Assert.Throws<ConfigException>(() => ConfigLoader.Load(["--config", Missing], Missing)).Message);

    [Fact]
    public void Help_lists_every_key_with_its_default()
    {
        var help = ConfigLoader.Load(["--help"], Missing).HelpText!;
        foreach (var key in new[] { "--listen", "--state-dir", "--namespaces-dir", "--config", "--log-level", "--socket-group", "--runtime-handlers", "--cni-conf-dir", "--cni-bin-dir", "--cni-timeout",
            "--runtime-path", "--runtime-root", "--conmon-path", "--default-cgroup-parent", "--pids-limit",
            "--streaming-address", "--streaming-port", "--streaming-idle-timeout", "--events-queue-capacity" })
            Assert.Contains(key, help);
        Assert.Contains("\"/var/lib/crid\"", help);
    }

    [Fact]
    public void The_container_runtime_keys_have_cri_o_like_defaults_and_come_from_file_and_flags()
    {
        var o = ConfigLoader.Load([], Missing).Options;
        Assert.Equal("/usr/sbin/runc", o.RuntimePath);
        Assert.Equal("/run/crid/runtime", o.RuntimeRoot);
        Assert.Equal("/usr/bin/conmon", o.ConmonPath);
        Assert.Equal("/crid", o.DefaultCgroupParent);
        Assert.Equal(0, o.PidsLimit);
        Assert.Equal([new ConfiguredHandler("", "/usr/sbin/runc")], o.Handlers());

        var file = Write("runtime-path: /opt/runc\nruntime-root: /run/x\nconmon-path: /opt/conmon\ndefault-cgroup-parent: /pods\npids-limit: 1024\n" +
            "runtime-handlers: [runc, kata=/opt/kata/bin/kata-runtime]\n");
        o = ConfigLoader.Load(["--config", file, "--pids-limit", "2048"], Missing).Options;
        Assert.Equal(("/opt/runc", "/run/x", "/opt/conmon", "/pods", 2048L), (o.RuntimePath, o.RuntimeRoot, o.ConmonPath, o.DefaultCgroupParent, o.PidsLimit));
        Assert.Equal([new ConfiguredHandler("", "/opt/runc"), new ConfiguredHandler("runc", "/opt/runc"), new ConfiguredHandler("kata", "/opt/kata/bin/kata-runtime")], o.Handlers());
        Assert.Equal(["runc", "kata"], o.HandlerNames());
    }

    [Theory]
    [InlineData("runtime-handlers: [Kata]\n", "\"Kata\" is not a runtime handler name")]
    [InlineData("runtime-handlers: [\"kata=bin/kata\"]\n", "runtime handler kata: \"bin/kata\" is not an absolute path")]
    [InlineData("runtime-handlers: [a, a=/x]\n", "runtime handler a is given twice")]
    [InlineData("pids-limit: -1\n", "\"-1\" is not a whole number of 0 or more")]
    [InlineData("runtime-root: run/crid\n", "\"run/crid\" is not an absolute path")]
    public void Bad_container_runtime_keys_name_the_key(string yaml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(["--config", Write(yaml)], Missing));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_long_handler_name_gets_a_short_folder()
    {
        Assert.Equal("default", new ConfiguredHandler("", "/r").StateFolderName);
        Assert.Equal("kata", new ConfiguredHandler("kata", "/r").StateFolderName);
        var folder = new ConfiguredHandler("a-very-long-runtime-class-handler", "/r").StateFolderName;
        Assert.Equal(8, folder.Length);
        Assert.NotEqual(folder, new ConfiguredHandler("a-very-long-runtime-class-handler2", "/r").StateFolderName);
    }
}
