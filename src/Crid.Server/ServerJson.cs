using System.Text.Json.Serialization;
using Crid.Core.Configuration;

namespace Crid.Server;

/// <summary>Source-generated JSON so the daemon stays trimmable and NativeAOT-friendly.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower, WriteIndented = false)]
[JsonSerializable(typeof(CridOptions))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class ServerJson : JsonSerializerContext;
