namespace Crid.EndToEnd.Tests;

/// <summary>
/// The test classes that run Debian's portmap plugin on the host (CniTests, and BenchQuickTests'
/// network phase) take turns. portmap's CNI-HOSTPORT-* chains are shared by every portmap user, and
/// each class removes them only if they appeared during its own run and nobody's DNAT rule is left
/// in them: two classes at once each saw the other's chains or rules, neither removed them, and
/// `make test` left the chains (with duplicated jumps from two concurrent creations) on the host.
/// </summary>
[CollectionDefinition(Name)]
public sealed class HostNatCollection
{
    public const string Name = "host nat (portmap)";
}
