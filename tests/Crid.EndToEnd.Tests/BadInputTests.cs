using Google.Protobuf;
using Grpc.Core;
using Runtime.V1;

namespace Crid.EndToEnd.Tests;

/// <summary>
/// One daemon for the whole table: a holder sandbox (for the duplicate name) and two sandboxes whose
/// ids share a first character (for the ambiguous prefix).
/// </summary>
public sealed class BadInputDaemon : IAsyncLifetime
{
    internal DaemonProcess D { get; private set; } = null!;
    internal List<string> Ids { get; } = [];
    internal string AmbiguousPrefix { get; private set; } = "";
    internal const string HolderName = "bad-holder";

    public async Task InitializeAsync()
    {
        D = await DaemonProcess.StartAsync();
        Ids.Add((await D.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal(HolderName, NamespaceMode.Container) })).PodSandboxId);
        // At most 17 ids until two share a first hex digit (pigeonhole).
        for (var i = 0; Ids.GroupBy(x => x[0]).All(g => g.Count() == 1); i++)
            Ids.Add((await D.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal($"bad-amb{i}", NamespaceMode.Container) })).PodSandboxId);
        AmbiguousPrefix = Ids.GroupBy(x => x[0]).First(g => g.Count() > 1).Key.ToString();
    }

    public async Task DisposeAsync()
    {
        foreach (var id in Ids)
            await D.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
        await D.DisposeAsync();
    }
}

/// <summary>
/// Bad requests, each with the exact status it must get; after each, the daemon still answers and
/// nothing changed: no nsfs mount, no file in the state or namespaces dir, no reserved name.
/// </summary>
public sealed class BadInputTests(BadInputDaemon fixture) : IClassFixture<BadInputDaemon>
{
    private sealed record Case(StatusCode Expected, Func<BadInputDaemon, Task> Call, string? DetailContains = null);

    private const string NsField = "config.linux.security_context.namespace_options";

    // Built on first use: the helpers' static fields below must be initialised first.
    private static Dictionary<string, Case>? _table;
    private static Dictionary<string, Case> Table => _table ??= BuildTable();

    public static TheoryData<string> Cases() => new(Table.Keys.Order(StringComparer.Ordinal));

    [Fact]
    public void The_table_is_big_enough() => Assert.True(Table.Count >= 30, $"{Table.Count} cases");

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Bad_request_gets_its_status_and_leaves_nothing(string name)
    {
        var d = fixture.D;
        var c = Table[name];
        var before = await SnapshotAsync(d);
        var crashesBefore = Crashes(d);

        var e = await Assert.ThrowsAsync<RpcException>(() => c.Call(fixture));
        Assert.True(c.Expected == e.StatusCode, $"{name}: expected {c.Expected}, got {e.StatusCode}: {e.Status.Detail}");
        Assert.False(string.IsNullOrWhiteSpace(e.Status.Detail), "the status must say what is wrong");
        if (c.DetailContains is not null)
            Assert.True(e.Status.Detail.Contains(c.DetailContains, StringComparison.Ordinal), $"{name}: \"{c.DetailContains}\" not in: {e.Status.Detail}");

        await d.Runtime.VersionAsync(new VersionRequest());
        var after = await SnapshotAsync(d);
        Assert.Equal(before.Mounts, after.Mounts);
        Assert.Equal(before.State, after.State);
        Assert.Equal(before.Pins, after.Pins);
        Assert.Equal(before.Names, after.Names);
        Assert.Equal(crashesBefore, Crashes(d));
    }

    [Fact]
    public async Task Names_used_by_bad_requests_are_free_afterwards()
    {
        var d = fixture.D;
        // "bad" is the name of every rejected RunPodSandbox in the table.
        var id = (await d.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal("bad", NamespaceMode.Container) })).PodSandboxId;
        await d.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = id });
    }

    private sealed record Snapshot(List<string> Mounts, List<string> State, List<string> Pins, Dictionary<string, string> Names);

    private static async Task<Snapshot> SnapshotAsync(DaemonProcess d) =>
        new(Cleanup.NsfsMountsUnder(d.Dir).Order().ToList(), Leaks.Tree(d.StateDir), Leaks.PinFiles(d.NamespacesDir), await Leaks.ReservedNamesAsync(d));

    private static int Crashes(DaemonProcess d) => d.Stderr.Split('\n').Count(l => l.Contains("failed unexpectedly"));

    private static Func<BadInputDaemon, Task> Run(Action<PodSandboxConfig> edit, string handler = "") => f =>
    {
        var config = SandboxTests.Minimal("bad", NamespaceMode.Container);
        edit(config);
        return f.D.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = config, RuntimeHandler = handler }).ResponseAsync;
    };

    private static NamespaceOption Ns(PodSandboxConfig c) => c.Linux.SecurityContext.NamespaceOptions;

    private static Action<PodSandboxConfig> Userns(IEnumerable<IDMapping>? uids, IEnumerable<IDMapping>? gids, NamespaceMode mode = NamespaceMode.Pod) => c =>
    {
        var u = new UserNamespace { Mode = mode };
        if (uids is not null)
            u.Uids.AddRange(uids);
        if (gids is not null)
            u.Gids.AddRange(gids);
        Ns(c).UsernsOptions = u;
    };

    private static IDMapping Map(uint container, uint host, uint length) => new() { ContainerId = container, HostId = host, Length = length };

    private static readonly IDMapping[] Root = [Map(0, 100000, 65536)];

    private static Action<PodSandboxConfig> Sysctl(string name, string value, Action<NamespaceOption>? ns = null) => c =>
    {
        c.Linux.Sysctls[name] = value;
        ns?.Invoke(Ns(c));
    };

    private static readonly Marshaller<byte[]> Raw = Marshallers.Create(b => b, b => b);

    /// <summary>Random bytes that the method's request parser really refuses: garbage, not a lucky valid message.</summary>
    private static Func<BadInputDaemon, Task> Garbage(string service, string method, MessageParser parser, int seed) => f =>
    {
        var random = new Random(seed);
        byte[] bytes;
        while (true)
        {
            bytes = new byte[random.Next(1, 200)];
            random.NextBytes(bytes);
            try { parser.ParseFrom(bytes); }
            catch (InvalidProtocolBufferException) { break; }
        }
        var call = new Method<byte[], byte[]>(MethodType.Unary, service, method, Raw, Raw);
        return f.D.Channel.CreateCallInvoker().AsyncUnaryCall(call, null, new CallOptions(deadline: DateTime.UtcNow.AddSeconds(10)), bytes).ResponseAsync;
    };

    private static Dictionary<string, Case> BuildTable()
    {
        const StatusCode Invalid = StatusCode.InvalidArgument;
        var t = new Dictionary<string, Case>
        {
            ["run: no config"] = new(Invalid, f => f.D.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest()).ResponseAsync, "config"),
            ["run: no metadata"] = new(Invalid, Run(c => c.Metadata = null), "config.metadata"),
            ["run: no metadata.name"] = new(Invalid, Run(c => c.Metadata.Name = ""), "config.metadata.name"),
            ["run: no metadata.namespace"] = new(Invalid, Run(c => c.Metadata.Namespace = ""), "config.metadata.namespace"),
            ["run: no metadata.uid"] = new(Invalid, Run(c => c.Metadata.Uid = ""), "config.metadata.uid"),
            ["run: network mode 99"] = new(Invalid, Run(c => Ns(c).Network = (NamespaceMode)99), $"{NsField}.network"),
            ["run: pid mode 99"] = new(Invalid, Run(c => Ns(c).Pid = (NamespaceMode)99), $"{NsField}.pid"),
            ["run: ipc mode 99"] = new(Invalid, Run(c => Ns(c).Ipc = (NamespaceMode)99), $"{NsField}.ipc"),
            ["run: userns mode 99"] = new(Invalid, Run(Userns(Root, Root, (NamespaceMode)99)), $"{NsField}.userns_options.mode"),
            ["run: port protocol 99"] = new(Invalid, Run(c => c.PortMappings.Add(new PortMapping { Protocol = (Protocol)99, ContainerPort = 80 })), "config.port_mappings[0].protocol"),
            ["run: network TARGET"] = new(Invalid, Run(c => Ns(c).Network = NamespaceMode.Target), $"{NsField}.network"),
            ["run: network CONTAINER"] = new(Invalid, Run(c => Ns(c).Network = NamespaceMode.Container), $"{NsField}.network"),
            ["run: ipc TARGET"] = new(Invalid, Run(c => Ns(c).Ipc = NamespaceMode.Target), $"{NsField}.ipc"),
            ["run: ipc CONTAINER"] = new(Invalid, Run(c => Ns(c).Ipc = NamespaceMode.Container), $"{NsField}.ipc"),
            ["run: pid TARGET"] = new(Invalid, Run(c => Ns(c).Pid = NamespaceMode.Target), $"{NsField}.pid"),
            ["run: userns CONTAINER"] = new(Invalid, Run(Userns(Root, Root, NamespaceMode.Container)), $"{NsField}.userns_options.mode"),
            ["run: userns TARGET"] = new(Invalid, Run(Userns(Root, Root, NamespaceMode.Target)), $"{NsField}.userns_options.mode"),
            ["run: userns POD without mappings"] = new(Invalid, Run(Userns(null, null)), $"{NsField}.userns_options.uids"),
            ["run: userns POD with uids only"] = new(Invalid, Run(Userns(Root, null)), $"{NsField}.userns_options.gids"),
            ["run: userns POD with gids only"] = new(Invalid, Run(Userns(null, Root)), $"{NsField}.userns_options.uids"),
            ["run: userns NODE with mappings"] = new(Invalid, Run(Userns(Root, Root, NamespaceMode.Node)), $"{NsField}.userns_options"),
            ["run: mapping of length 0"] = new(Invalid, Run(Userns([Map(0, 100000, 0)], Root)), "uids[0].length"),
            ["run: mapping overflowing 2^32"] = new(Invalid, Run(Userns(Root, [Map(0, 4294967000, 1000)])), "gids[0]"),
            ["run: overlapping mappings"] = new(Invalid, Run(Userns([Map(0, 100000, 65536), Map(1000, 300000, 10)], Root)), "overlaps"),
            ["run: overlapping host ranges"] = new(Invalid, Run(Userns(Root, [Map(0, 100000, 10), Map(10, 100005, 10)])), "overlaps"),
            ["run: 341 mapping lines"] = new(Invalid, Run(Userns(Enumerable.Range(0, 341).Select(i => Map((uint)i, 100000 + (uint)i, 1)), Root)), "341"),
            ["run: container root not mapped"] = new(Invalid, Run(Userns([Map(1, 100000, 65536)], Root)), "root"),
            ["run: sysctl vm.swappiness (not namespaced)"] = new(Invalid, Run(Sysctl("vm.swappiness", "10")), "vm.swappiness"),
            ["run: sysctl kernel.hostname (uts: the hostname field's job)"] = new(Invalid, Run(Sysctl("kernel.hostname", "x")), "kernel.hostname"),
            ["run: sysctl that does not exist"] = new(Invalid, Run(Sysctl("net.core.nope", "1")), "sysctl"),
            ["run: sysctl net/../../etc"] = new(Invalid, Run(Sysctl("net/../../etc", "1")), "sysctls"),
            ["run: sysctl net..core"] = new(Invalid, Run(Sysctl("net..core", "1")), "sysctls"),
            ["run: sysctl net.core."] = new(Invalid, Run(Sysctl("net.core.", "1")), "sysctls"),
            ["run: sysctl /net/core/x"] = new(Invalid, Run(Sysctl("/net/core/x", "1")), "sysctls"),
            ["run: sysctl net//core"] = new(Invalid, Run(Sysctl("net//core", "1")), "sysctls"),
            ["run: sysctl name with NUL"] = new(Invalid, Run(Sysctl("net.core\0.somaxconn", "1")), "sysctls"),
            ["run: sysctl name with newline"] = new(Invalid, Run(Sysctl("net.core.somaxconn\nnet.core.x", "1")), "sysctls"),
            ["run: sysctl value with NUL"] = new(Invalid, Run(Sysctl("net.core.somaxconn", "1\02")), "NUL"),
            ["run: sysctl value with newline"] = new(Invalid, Run(Sysctl("net.core.somaxconn", "1\n2")), "newline"),
            ["run: net sysctl on the host network"] = new(Invalid, Run(Sysctl("net.core.somaxconn", "1", n => n.Network = NamespaceMode.Node)), "network namespace"),
            ["run: ipc sysctl on the host ipc"] = new(Invalid, Run(Sysctl("kernel.shmmax", "1", n => n.Ipc = NamespaceMode.Node)), "ipc namespace"),
            ["run: sysctl value the kernel rejects"] = new(Invalid, Run(Sysctl("net.core.somaxconn", "abc")), "somaxconn"),
            ["run: sysctl value the kernel takes only part of"] = new(Invalid, Run(Sysctl("kernel.msgmax", "1 2 3 4")), "only part"),
            ["run: hostname of 65 bytes"] = new(Invalid, Run(c => c.Hostname = new string('h', 65)), "config.hostname"),
            ["run: hostname with /"] = new(Invalid, Run(c => c.Hostname = "a/b"), "config.hostname"),
            ["run: label over 4096 bytes"] = new(Invalid, Run(c => c.Labels["big"] = new string('v', 4094)), "config.labels"),
            ["run: annotation over 4096 bytes"] = new(Invalid, Run(c => c.Annotations[new string('k', 4000)] = new string('v', 97)), "config.annotations"),
            ["run: unknown runtime handler"] = new(Invalid, Run(_ => { }, handler: "kata"), "runtime_handler"),
            ["run: duplicate name"] = new(StatusCode.AlreadyExists, f =>
                f.D.Runtime.RunPodSandboxAsync(new RunPodSandboxRequest { Config = SandboxTests.Minimal(BadInputDaemon.HolderName, NamespaceMode.Container) }).ResponseAsync, "reserved"),
            ["status: empty id"] = new(Invalid, f => f.D.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest()).ResponseAsync, "pod_sandbox_id"),
            ["stop: empty id"] = new(Invalid, f => f.D.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest()).ResponseAsync, "pod_sandbox_id"),
            ["remove: empty id"] = new(Invalid, f => f.D.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest()).ResponseAsync, "pod_sandbox_id"),
            ["status: ambiguous id"] = new(Invalid, f => f.D.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = f.AmbiguousPrefix }).ResponseAsync, "more than one"),
            ["stop: ambiguous id"] = new(Invalid, f => f.D.Runtime.StopPodSandboxAsync(new StopPodSandboxRequest { PodSandboxId = f.AmbiguousPrefix }).ResponseAsync, "more than one"),
            ["remove: ambiguous id"] = new(Invalid, f => f.D.Runtime.RemovePodSandboxAsync(new RemovePodSandboxRequest { PodSandboxId = f.AmbiguousPrefix }).ResponseAsync, "more than one"),
            ["status: unknown id"] = new(StatusCode.NotFound, f => f.D.Runtime.PodSandboxStatusAsync(new PodSandboxStatusRequest { PodSandboxId = "nope" }).ResponseAsync, "not found"),
        };

        const string Runtime = "runtime.v1.RuntimeService", Image = "runtime.v1.ImageService";
        (string Service, string Method, MessageParser Parser)[] garbage =
        [
            (Runtime, "RunPodSandbox", RunPodSandboxRequest.Parser),
            (Runtime, "StopPodSandbox", StopPodSandboxRequest.Parser),
            (Runtime, "RemovePodSandbox", RemovePodSandboxRequest.Parser),
            (Runtime, "PodSandboxStatus", PodSandboxStatusRequest.Parser),
            (Runtime, "ListPodSandbox", ListPodSandboxRequest.Parser),
            (Runtime, "Version", VersionRequest.Parser),
            (Runtime, "Status", StatusRequest.Parser),
            (Runtime, "UpdateRuntimeConfig", UpdateRuntimeConfigRequest.Parser),
            (Image, "ListImages", ListImagesRequest.Parser),
            (Image, "ImageStatus", ImageStatusRequest.Parser),
            (Image, "ImageFsInfo", ImageFsInfoRequest.Parser),
            (Image, "PullImage", PullImageRequest.Parser),
            (Image, "RemoveImage", RemoveImageRequest.Parser),
        ];
        for (var i = 0; i < garbage.Length; i++)
        {
            var (service, method, parser) = garbage[i];
            t[$"garbage bytes: {method}"] = new(Invalid, Garbage(service, method, parser, seed: 6000 + i), "not a valid");
        }
        return t;
    }
}
