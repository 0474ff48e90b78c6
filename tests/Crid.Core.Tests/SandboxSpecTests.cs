using System.Text.Json.Nodes;
using Crid.Core.Oci;

namespace Crid.Core.Tests;

/// <summary>
/// The sandbox's config.json is what it was before the spec became a typed model: testdata/specs
/// holds the bytes the JsonObject-patching code wrote for each sandbox shape.
/// </summary>
public sealed class SandboxSpecTests
{
    public static TheoryData<string> Cases() => [.. SandboxSpecCases.All().Select(c => c.Name)];

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_sandbox_spec_is_unchanged(string name)
    {
        var sandbox = SandboxSpecCases.All().Single(c => c.Name == name).Sandbox;
        var expected = JsonNode.Parse(File.ReadAllBytes(Path.Combine(TestData.Dir, "specs", name + ".json")));
        var actual = JsonNode.Parse(SandboxSpec.Serialize(SandboxSpec.Build(sandbox)));
        Assert.True(JsonNode.DeepEquals(expected, actual), $"{name}:\n{actual}");
        // Same order too: a reader diffing two bundles sees no churn.
        Assert.Equal(expected!.ToJsonString(), actual!.ToJsonString());
    }
}
