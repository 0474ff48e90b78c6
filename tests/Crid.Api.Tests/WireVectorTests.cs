using System.Text.Json.Nodes;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Runtime.V1;

namespace Crid.Api.Tests;

/// <summary>
/// Decodes the CRI request messages crictl put on the wire (testdata/cri-vectors) with
/// our api.proto and checks them against the expected canonical JSON and bytes.
/// </summary>
public sealed class WireVectorTests
{
    private static readonly JsonFormatter Formatter =
        new(JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true));

    public static TheoryData<string> Vectors()
    {
        var data = new TheoryData<string>();
        // If the folder is missing, still yield one case so the theory fails loudly
        // (via VectorFolder.Locate) instead of silently running nothing.
        var dir = VectorFolder.TryLocate();
        if (dir is null)
        {
            data.Add("<cri-vectors folder not found>");
            return data;
        }
        foreach (var file in Directory.GetFiles(dir, "*.bin").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileName(file));
        return data;
    }

    [Fact]
    public void AtLeastTenVectorsArePresent()
    {
        var dir = VectorFolder.Locate();
        var count = Directory.GetFiles(dir, "*.bin").Length;
        Assert.True(count >= 10, $"expected at least 10 *.bin vectors in {dir}, found {count}");
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void VectorDecodesToExpectedJsonAndRoundTrips(string fileName)
    {
        var dir = VectorFolder.Locate();
        var binPath = Path.Combine(dir, fileName);
        var jsonPath = Path.ChangeExtension(binPath, ".json");
        Assert.True(File.Exists(jsonPath), $"missing expected JSON {jsonPath}");

        var typeName = MessageTypeOf(fileName);
        var descriptor = FindMessage(typeName);
        Assert.True(descriptor is not null, $"no message type runtime.v1.{typeName} in api.proto (from {fileName})");

        var bytes = File.ReadAllBytes(binPath);
        var message = descriptor!.Parser.ParseFrom(bytes);

        // Canonical JSON with proto field names, enums by name, defaults omitted.
        var actualJson = JsonNode.Parse(Formatter.Format(message));
        var expectedJson = JsonNode.Parse(File.ReadAllText(jsonPath));
        Assert.True(
            JsonNode.DeepEquals(expectedJson, actualJson),
            $"{fileName}: decoded JSON differs\nexpected: {expectedJson?.ToJsonString()}\nactual:   {actualJson?.ToJsonString()}");

        // Re-encoding must reproduce the captured bytes exactly.
        Assert.Equal(bytes, message.ToByteArray());

        // No field may be unknown to our schema, at any depth: dropping unknown
        // fields while parsing must not change the encoding.
        var strict = descriptor.Parser.WithDiscardUnknownFields(true).ParseFrom(bytes);
        Assert.True(
            bytes.AsSpan().SequenceEqual(strict.ToByteArray()),
            $"{fileName}: message contains fields unknown to api.proto");
    }

    /// <summary><c>case.MessageType.bin</c> → <c>MessageType</c>.</summary>
    private static string MessageTypeOf(string fileName)
    {
        var parts = fileName.Split('.');
        Assert.True(parts.Length >= 3 && parts[^1] == "bin", $"vector name '{fileName}' is not <case>.<MessageType>.bin");
        return parts[^2];
    }

    private static MessageDescriptor? FindMessage(string name) =>
        ApiReflection.Descriptor.MessageTypes.FirstOrDefault(m => m.Name == name);
}

/// <summary>Finds <c>testdata/cri-vectors</c> in the repository (the folder holding Cri.sln).</summary>
internal static class VectorFolder
{
    private const string Relative = "testdata/cri-vectors";

    public static string? TryLocate()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cri.sln")))
                return Directory.Exists(Path.Combine(dir.FullName, Relative)) ? Path.Combine(dir.FullName, Relative) : null;
        }
        return null;
    }

    public static string Locate() =>
        TryLocate() ?? throw new DirectoryNotFoundException(
            $"Could not find '{Relative}' in the repository root (the folder holding Cri.sln) above {AppContext.BaseDirectory}.");
}
