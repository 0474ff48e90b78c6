using Crid.Core.Configuration;
using Crid.Core.Containers;
using Crid.Core.Events;
using Crid.Core.Sandboxes;
using Crid.Core.Stats;
using Crid.Streaming;
using Runtime.V1;

namespace Crid.Server.Services;

/// <summary>
/// CRI RuntimeService. Thin: each RPC lives in its own partial file, checks the request, calls the
/// domain and maps the result back. RPCs not overridden answer Unimplemented (the generated base).
/// </summary>
internal sealed partial class CriRuntimeService(CridOptions options, NetworkStatus network, SandboxManager sandboxes,
    ContainerManager containers, StreamingServer streaming, StatsCollector stats, ContainerEventBus events)
    : RuntimeService.RuntimeServiceBase
{
}
