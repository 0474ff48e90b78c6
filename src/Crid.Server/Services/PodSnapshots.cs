using Crid.Core.Containers;
using Crid.Core.Errors;
using Crid.Core.Events;
using Crid.Core.Sandboxes;
using Microsoft.Extensions.DependencyInjection;

namespace Crid.Server.Services;

/// <summary>
/// The statuses container events carry, built by the same mappings PodSandboxStatus and
/// ContainerStatus answer with. The managers are looked up at the first event, not at
/// construction: they are the ones publishing through <see cref="ContainerEvents"/>.
/// </summary>
internal sealed class PodSnapshots(IServiceProvider services) : IPodSnapshots
{
    public PodSnapshot? Snapshot(string sandboxId)
    {
        Sandbox sandbox;
        try
        {
            sandbox = services.GetRequiredService<SandboxManager>().Get(sandboxId);
        }
        catch (NotFoundException)
        {
            return null;
        }
        // Each container's status as ContainerStatus answers it (without verbose info), created first.
        var containers = services.GetRequiredService<ContainerManager>().OfSandbox(sandbox.Id)
            .OrderBy(c => c.CreatedAt).Select(ContainerMapping.ToStatus).ToList();
        return new PodSnapshot(SandboxMapping.ToStatus(sandbox), containers);
    }
}
