using Crid.Core.Containers;
using Crid.Core.Oci;
using Crid.Core.Sandboxes;

namespace Crid.Core.Stats;

/// <summary>What stats read of a container of the lifecycle: its identity, its cgroup, its writable layer.</summary>
public static class ContainerStatsSources
{
    /// <summary>
    /// The container's stats source. Its cgroup is where its spec put it (<see cref="ContainerSpecs.CgroupsPath"/>:
    /// under the pod's cgroup_parent, else under <paramref name="defaultCgroupParent"/>); its writable
    /// layer is the overlay's upper folder while the container exists (a folder not there has no
    /// figures: the walk finds that, so no stat of it here on every call).
    /// </summary>
    public static ContainerStatsSource Of(Container c, Sandbox? sandbox, string defaultCgroupParent)
    {
        var parent = sandbox?.Config.Linux?.CgroupParent is { Length: > 0 } p ? p : defaultCgroupParent;
        return new ContainerStatsSource(c.Id, c.Config.Metadata, c.Config.Labels, c.Config.Annotations,
            PodSpec.CgroupsPath(parent, c.Id), c.Removed ? null : c.UpperDir);
    }
}
