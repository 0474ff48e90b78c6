using System.Text.Json;
using System.Text.Json.Serialization;

namespace Crid.Core.Oci;

/// <summary>
/// config.json in and out, through System.Text.Json source generation: no reflection, so the
/// NativeAOT daemon serialises a spec with the same code the tests run. Nulls are left out
/// (runtime-spec: an absent optional field is "not set"), and the output is indented as runc's
/// own `runc spec` writes it, for people reading a bundle.
/// </summary>
public static class SpecJson
{
    public static byte[] Serialize(Spec spec) => JsonSerializer.SerializeToUtf8Bytes(spec, SpecJsonContext.Default.Spec);

    /// <exception cref="JsonException">the bytes are not a spec.</exception>
    public static Spec Deserialize(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, SpecJsonContext.Default.Spec) ?? throw new JsonException("config.json is null");

    /// <summary>A seccomp profile file: the runtime-spec's linux.seccomp object on its own.</summary>
    /// <exception cref="JsonException">the bytes are not a seccomp profile.</exception>
    public static LinuxSeccomp DeserializeSeccomp(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, SpecJsonContext.Default.LinuxSeccomp) ?? throw new JsonException("the profile is null");

    public static byte[] SerializeSeccomp(LinuxSeccomp profile) => JsonSerializer.SerializeToUtf8Bytes(profile, SpecJsonContext.Default.LinuxSeccomp);

    /// <summary>A linux.resources object on its own, as `runc update --resources` reads it.</summary>
    public static byte[] SerializeResources(LinuxResources resources) => JsonSerializer.SerializeToUtf8Bytes(resources, SpecJsonContext.Default.LinuxResources);
}

[JsonSourceGenerationOptions(WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true)]
[JsonSerializable(typeof(Spec))]
[JsonSerializable(typeof(LinuxSeccomp))]
[JsonSerializable(typeof(LinuxResources))]
internal sealed partial class SpecJsonContext : JsonSerializerContext;
