using Crid.Core.Sandboxes;
using Runtime.V1;

namespace Crid.Core.Oci;

/// <summary>
/// The sandbox's OCI runtime-spec config.json: what the pod is, with namespace paths pointing at
/// the pins. No runtime runs it (there is no pause container); `crictl inspectp` shows it, and its
/// parts are the ones every container of the pod gets (<see cref="PodSpec"/>).
/// </summary>
public static class SandboxSpec
{
    public const string OciVersion = SpecVersion.Current;

    public static Spec Build(Sandbox sandbox) => Build(PodSpecContext.Of(sandbox));

    /// <summary>The spec of a pod that need not be a stored sandbox yet: Run writes it while the pins are made.</summary>
    public static Spec Build(PodSpecContext pod)
    {
        ArgumentNullException.ThrowIfNull(pod);
        var ns = pod.NamespaceOptions;
        var opts = new List<SpecOpt>
        {
            SpecOpts.WithTerminal(false),
            SpecOpts.WithUser(0, 0),
            SpecOpts.WithProcessArgs(["/pause"]),
            SpecOpts.WithEnv([PodSpec.DefaultPath]),
            SpecOpts.WithCwd("/"),
            SpecOpts.WithCapabilities(PodSpec.DefaultCapabilities),
            SpecOpts.WithNoNewPrivileges(true),
            SpecOpts.WithRoot("rootfs", readOnly: true),
            SpecOpts.WithHostname(pod.Hostname),
            SpecOpts.WithMounts(PodSpec.BaseMounts(pod)),
            SpecOpts.WithMounts(PodSpec.FileMounts(pod, readOnly: true)),
            SpecOpts.WithAnnotations(pod.Config.Annotations.OrderBy(a => a.Key, StringComparer.Ordinal)),
            SpecOpts.WithAnnotations(PodSpec.PodAnnotations(pod, "sandbox")),
            SpecOpts.WithAnnotation(CriAnnotations.SandboxLogDirectory, pod.Config.LogDirectory),
        };
        // runtime-spec config-linux.md: a namespace with a path is joined, without one it is created;
        // a type that is absent is shared with the runtime's caller (here: the host's, for NODE).
        if (ns.Pid != NamespaceMode.Node)
            opts.Add(SpecOpts.WithNamespace("pid", pod.Pins.GetValueOrDefault("pid")));
        opts.AddRange(PodSpec.SharedNamespaces(pod));
        opts.Add(SpecOpts.WithMaskedPaths(PodSpec.DefaultMaskedPaths));
        opts.Add(SpecOpts.WithReadonlyPaths(PodSpec.DefaultReadonlyPaths));
        opts.Add(SpecOpts.WithDeviceRule(new LinuxDeviceRule { Allow = false, Access = "rwm" }));
        if (pod.Config.Linux is { CgroupParent.Length: > 0 } l)
            opts.Add(SpecOpts.WithCgroupsPath(PodSpec.CgroupsPath(l.CgroupParent, pod.Id)));
        return SpecOpts.Build(opts);
    }

    /// <summary>A spec as config.json bytes (indented UTF-8 JSON).</summary>
    public static byte[] Serialize(Spec spec) => SpecJson.Serialize(spec);
}
