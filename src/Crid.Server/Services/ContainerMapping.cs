using System.Text;
using System.Text.Json;
using Crid.Core.Containers;
using Runtime.V1;
using CoreStatus = Crid.Core.Containers.ContainerStatus;

namespace Crid.Server.Services;

/// <summary>Container → CRI messages.</summary>
internal static class ContainerMapping
{
    /// <summary>
    /// The container as ListContainers gives it: built once per container and state, with its
    /// serialised bytes (ListAnswers writes the answer from those), then shared by
    /// every answer (read-only: never change the message returned), as SandboxMapping.ToPodSandbox.
    /// kubelet lists every container every second; building 1,000 of these afresh, with their
    /// image specs, label and annotation maps, put ListContainers over 1,000 at 7.9 ms p50 on a
    /// busy machine (docs/benchmark.md).
    /// </summary>
    public static global::Runtime.V1.Container ToContainer(Crid.Core.Containers.Container c)
    {
        var state = ContainerManager.ToCri(c.State);
        var byState = Listed.GetValue(c, static _ => new global::Runtime.V1.Container?[4]);
        var index = (int)state is >= 0 and < 4 ? (int)state : 3;
        // Two callers racing here build equal messages; either may stay.
        return Volatile.Read(ref byState[index]) ?? (byState[index] = ListAnswers.Remember(Build(c, state)));
    }

    /// <summary>Per container, its listing in each CRI state; an entry goes with its container.</summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Crid.Core.Containers.Container, global::Runtime.V1.Container?[]> Listed = new();

    private static global::Runtime.V1.Container Build(Crid.Core.Containers.Container c, global::Runtime.V1.ContainerState state) => new()
    {
        Id = c.Id,
        PodSandboxId = c.SandboxId,
        Metadata = c.Metadata,
        Image = ImageOf(c),
        ImageRef = c.ImageRef,
        ImageId = c.ImageId,
        State = state,
        CreatedAt = c.CreatedAt,
        Labels = { c.Config.Labels },
        Annotations = { c.Config.Annotations },
    };

    /// <summary>Every field kubelet reads: state, times, exit code and reason, image, mounts, log path, labels, annotations, resources.</summary>
    public static global::Runtime.V1.ContainerStatus ToStatus(Crid.Core.Containers.Container c)
    {
        var s = c.Status.Get();
        var status = new global::Runtime.V1.ContainerStatus
        {
            Id = c.Id,
            Metadata = c.Metadata,
            State = ContainerManager.ToCri(s.State),
            CreatedAt = c.CreatedAt,
            StartedAt = s.StartedAt,
            FinishedAt = s.FinishedAt,
            ExitCode = s.ExitCode,
            Image = ImageOf(c),
            ImageRef = c.ImageRef,
            ImageId = c.ImageId,
            Reason = s.Reason,
            Message = s.Message,
            Labels = { c.Config.Labels },
            Annotations = { c.Config.Annotations },
            Mounts = { c.Config.Mounts.Select(m => m.Clone()) },
            LogPath = c.LogPath,
            StopSignal = StopSignalOf(c),
        };
        if (s.Resources is { } r)
            status.Resources = new ContainerResources { Linux = r.Clone() };
        return status;
    }

    /// <summary>The image as containerd reports it: the image's first tag, with the config's annotations.</summary>
    private static ImageSpec ImageOf(Crid.Core.Containers.Container c)
    {
        var spec = c.Config.Image.Clone();
        spec.Image = c.ImageName;
        return spec;
    }

    private static Signal StopSignalOf(Crid.Core.Containers.Container c) =>
        c.Config.StopSignal != Signal.RuntimeDefault ? c.Config.StopSignal : StopSignals.ToProto(c.StopSignal);

    /// <summary>
    /// What `crictl inspect` prints under "info": the OCI spec as written, the pid, the sandbox,
    /// the runtime handler, the rootfs and the log path (containerd's keys where it has them).
    /// </summary>
    public static string VerboseInfo(Crid.Core.Containers.Container c)
    {
        CoreStatus s = c.Status.Get();
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("id", c.Id);
            w.WriteString("name", c.Name);
            w.WriteString("sandboxID", c.SandboxId);
            w.WriteNumber("pid", s.Pid);
            w.WriteString("runtimeHandler", c.RuntimeHandler);
            w.WriteString("imageID", c.ImageId);
            w.WriteString("bundle", c.Dir);
            w.WriteString("rootfs", c.RootfsPath);
            w.WriteString("logPath", c.LogPath);
            w.WriteNumber("stopSignal", c.StopSignal);
            w.WritePropertyName("runtimeSpec");
            try
            {
                w.WriteRawValue(File.ReadAllBytes(c.SpecPath));
            }
            catch (IOException)
            {
                w.WriteNullValue();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}
