using Crid.Core.Errors;
using Runtime.V1;

namespace Crid.Core.Oci;

public static partial class ContainerSpecs
{
    /// <summary>
    /// UpdateContainerResources' new limits as a runtime-spec <c>linux.resources</c> object (for
    /// <c>runc update --resources</c>): the same checks and host limits as at create, so an update
    /// can set nothing a create could not.
    /// </summary>
    /// <exception cref="InvalidArgumentException">a value is malformed or beyond this host; the field is named from <c>linux.</c>.</exception>
    public static byte[] ResourcesUpdate(LinuxContainerResources resources, IHostFacts host)
    {
        ArgumentNullException.ThrowIfNull(resources);
        ArgumentNullException.ThrowIfNull(host);
        try
        {
            CheckResources(resources);
            var spec = SpecOpts.Build(Resources(resources, host).ToList());
            return SpecJson.SerializeResources(spec.Linux?.Resources ?? new LinuxResources());
        }
        catch (InvalidArgumentException e) when (e.Field.StartsWith(Res, StringComparison.Ordinal))
        {
            // The request's field is UpdateContainerResourcesRequest.linux, not a CreateContainer config's.
            throw new InvalidArgumentException("linux" + e.Field[Res.Length..], e.Message[(e.Field.Length + 2)..]);
        }
    }
}
