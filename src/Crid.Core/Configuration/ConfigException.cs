namespace Crid.Core.Configuration;

/// <summary>A configuration the daemon must not start with; the message is the one line printed.</summary>
public sealed class ConfigException(string message) : Exception(message);
