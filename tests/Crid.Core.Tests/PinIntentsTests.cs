using Crid.Core.Networking;
using Crid.Core.Sandboxes;

namespace Crid.Core.Tests;

/// <summary>The pins' uuid entries: what recovery reads to clean up after a Run that never wrote its record.</summary>
public sealed class PinIntentsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("crid-intents-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static readonly NetworkIntent Network = new()
    {
        NetworkName = "pods",
        ConfigJson = "{\"cniVersion\":\"1.0.0\",\"name\":\"pods\",\"plugins\":[{\"type\":\"bridge\"}]}",
        NetNs = "/run/crid-ns/netns/0b3c9c1e-4a44-4a57-9a4e-2f4bd7c1e0f1",
        CniArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=a;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u",
        PortMappingsJson = "[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"tcp\"}]",
    };

    [Fact]
    public void An_entry_keeps_the_sandbox_and_every_argument_the_DEL_needs()
    {
        var intents = new PinIntents(Path.Combine(_dir, "pins"));
        var withNetwork = Guid.NewGuid().ToString("D");
        var without = Guid.NewGuid().ToString("D");
        intents.Record(withNetwork, "abc", Network);
        intents.Record(without, "def");
        File.WriteAllText(Path.Combine(intents.Dir, ".leftover.tmp-1"), "x");

        var all = intents.All();
        Assert.Equal(new PinIntent("abc", Network), all[withNetwork]);
        Assert.Equal(new PinIntent("def", null), all[without]);
        Assert.Equal(2, all.Count);
        Assert.False(File.Exists(Path.Combine(intents.Dir, ".leftover.tmp-1")));

        intents.Remove(withNetwork);
        intents.Remove(withNetwork);
        Assert.Equal([without], intents.All().Keys);
    }

    [Fact]
    public void An_entry_written_before_networks_were_recorded_is_the_bare_sandbox_id()
    {
        Assert.Equal(new PinIntent("abc", null), PinIntents.Parse("abc\n"u8.ToArray()));
        Assert.Equal("abc"u8.ToArray(), PinIntents.Serialize("abc", null));
        // One that does not parse still claims its pins, with no network to DEL.
        Assert.Equal(new PinIntent("", null), PinIntents.Parse("{\"sandbox\":\"abc\",\"network\":{}}"u8.ToArray()));
    }
}
