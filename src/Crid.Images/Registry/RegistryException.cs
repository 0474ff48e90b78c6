namespace Crid.Images.Registry;

/// <summary>A registry answered wrongly, not at all, or with content that failed a check.</summary>
public class RegistryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The registry says the manifest does not exist (404 on every endpoint tried).</summary>
public sealed class ManifestNotFoundException(string message) : RegistryException(message);
