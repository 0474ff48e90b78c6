using System.Text.Json.Serialization;

namespace Crid.Server;

/// <summary>Source-generated JSON so the daemon stays trimmable and NativeAOT-friendly.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower, WriteIndented = false)]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class ServerJson : JsonSerializerContext;
