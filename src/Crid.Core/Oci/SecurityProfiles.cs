using System.Text.Json;
using Crid.Core.Errors;
using Runtime.V1;

namespace Crid.Core.Oci;

/// <summary>
/// Seccomp and AppArmor: which profile a container gets from its security context, in the
/// current form (<c>seccomp</c>, <c>apparmor</c>: a SecurityProfile) or the deprecated strings
/// (<c>seccomp_profile_path</c>, <c>apparmor_profile</c>) that critest v1.26 still sends.
/// </summary>
internal static class SecurityProfiles
{
    private const string Sc = "config.linux.security_context";
    private const string LocalhostPrefix = "localhost/";

    private static readonly HashSet<string> Actions =
    [
        "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
    ];

    private static readonly HashSet<string> Operators =
    [
        "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
    ];

    /// <summary>The seccomp choice: null is unconfined, else the profile (the default one is built later, from the final capabilities).</summary>
    public static SeccompChoice Seccomp(LinuxContainerSecurityContext? sc, IHostFacts host)
    {
        if (sc is null)
            return SeccompChoice.Unconfined;
        var field = $"{Sc}.seccomp";
        SecurityProfile? profile = sc.Seccomp;
        if (profile is null)
        {
            field = $"{Sc}.seccomp_profile_path";
#pragma warning disable CS0612 // the deprecated string is what critest v1.26 sends
            profile = sc.SeccompProfilePath switch
            {
                // CRI: "" is unconfined for the deprecated field (critest: "seccomp default which is unconfined").
                "" or "unconfined" => new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Unconfined },
                "runtime/default" or "docker/default" => new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.RuntimeDefault },
                var p when p.StartsWith(LocalhostPrefix, StringComparison.Ordinal) =>
                    new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = p[LocalhostPrefix.Length..] },
                var p => throw new InvalidArgumentException(field,
                    $"\"{Sandboxes.SandboxValidator.Printable(p)}\" is none of \"unconfined\", \"runtime/default\", \"docker/default\" or \"localhost/<absolute path>\""),
            };
#pragma warning restore CS0612
        }
        if (sc.Privileged)
            return SeccompChoice.Unconfined;
        switch (profile.ProfileType)
        {
            case SecurityProfile.Types.ProfileType.Unconfined:
                return SeccompChoice.Unconfined;
            case SecurityProfile.Types.ProfileType.RuntimeDefault:
                // As containerd: without kernel support the default is simply not applied.
                return host.SeccompEnabled ? SeccompChoice.RuntimeDefault : SeccompChoice.Unconfined;
            case SecurityProfile.Types.ProfileType.Localhost:
                return new SeccompChoice(Localhost(profile.LocalhostRef, field, host));
            default:
                throw new InvalidArgumentException($"{field}.profile_type", $"unknown profile type {(int)profile.ProfileType}");
        }
    }

    private static LinuxSeccomp Localhost(string path, string field, IHostFacts host)
    {
        if (!path.StartsWith('/'))
            throw new InvalidArgumentException(field, $"the Localhost profile \"{Sandboxes.SandboxValidator.Printable(path)}\" is not an absolute path");
        if (!host.SeccompEnabled)
            throw new FailedPreconditionException($"{field}: the kernel has no seccomp filtering, so profile {path} cannot be applied");
        byte[]? bytes;
        try
        {
            bytes = host.ReadProfile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidArgumentException(field, $"the profile {path} cannot be read: {e.Message}");
        }
        if (bytes is null)
            throw new InvalidArgumentException(field, $"the profile {path} does not exist");
        try
        {
            return Normalize(SpecJson.DeserializeSeccomp(bytes), path, field);
        }
        catch (JsonException e)
        {
            throw new InvalidArgumentException(field, $"the profile {path} is not a seccomp profile: {e.Message}");
        }
    }

    /// <summary>
    /// A profile file as the runtime-spec wants it: Docker's archMap and single "name" folded into
    /// architectures and names, every action and operator one that libseccomp knows.
    /// </summary>
    internal static LinuxSeccomp Normalize(LinuxSeccomp p, string path, string field)
    {
        if (!Actions.Contains(p.DefaultAction))
            throw new InvalidArgumentException(field, $"the profile {path} has the unknown defaultAction \"{Sandboxes.SandboxValidator.Printable(p.DefaultAction)}\"");
        if (p.ArchMap is { Count: > 0 } map)
        {
            p.Architectures = [.. (p.Architectures ?? []).Concat(map.SelectMany(a => (a.SubArchitectures ?? []).Prepend(a.Architecture))).Distinct()];
            p.ArchMap = null;
        }
        foreach (var s in p.Syscalls ?? [])
        {
            if (s.Name is { Length: > 0 } name)
                s.Names = [.. (s.Names ?? []).Append(name).Distinct()];
            s.Name = null;
            if (s.Names is not { Count: > 0 })
                throw new InvalidArgumentException(field, $"the profile {path} has a syscall rule without names");
            if (!Actions.Contains(s.Action))
                throw new InvalidArgumentException(field, $"the profile {path} has the unknown action \"{Sandboxes.SandboxValidator.Printable(s.Action)}\"");
            foreach (var a in s.Args ?? [])
            {
                if (!Operators.Contains(a.Op) || a.Index > 5)
                    throw new InvalidArgumentException(field, $"the profile {path} has an argument rule with index {a.Index} and operator \"{Sandboxes.SandboxValidator.Printable(a.Op)}\"");
            }
        }
        return p;
    }

    /// <summary>
    /// AppArmor: the profile name to set, or null for none. This kernel has no AppArmor, so only a
    /// request that needs a real profile (Localhost) is refused; RuntimeDefault and Unconfined mean
    /// no confinement either way (crid ships no AppArmor default profile of its own).
    /// </summary>
    public static string? AppArmor(LinuxContainerSecurityContext? sc, IHostFacts host)
    {
        if (sc is null)
            return null;
        var field = $"{Sc}.apparmor";
        SecurityProfile? profile = sc.Apparmor;
        if (profile is null)
        {
            field = $"{Sc}.apparmor_profile";
#pragma warning disable CS0612 // the deprecated string, still sent by older kubelets
            profile = sc.ApparmorProfile switch
            {
                "" or "runtime/default" => null,
                "unconfined" => null,
                var p when p.StartsWith(LocalhostPrefix, StringComparison.Ordinal) && p.Length > LocalhostPrefix.Length =>
                    new SecurityProfile { ProfileType = SecurityProfile.Types.ProfileType.Localhost, LocalhostRef = p[LocalhostPrefix.Length..] },
                var p => throw new InvalidArgumentException(field,
                    $"\"{Sandboxes.SandboxValidator.Printable(p)}\" is none of \"runtime/default\", \"unconfined\" or \"localhost/<profile>\""),
            };
#pragma warning restore CS0612
        }
        if (profile is null || sc.Privileged)
            return null;
        switch (profile.ProfileType)
        {
            case SecurityProfile.Types.ProfileType.RuntimeDefault or SecurityProfile.Types.ProfileType.Unconfined:
                return null;
            case SecurityProfile.Types.ProfileType.Localhost:
                if (profile.LocalhostRef.Length == 0)
                    throw new InvalidArgumentException($"{field}.localhost_ref", "a Localhost profile needs a name");
                if (!host.AppArmorEnabled)
                    throw new InvalidArgumentException(field,
                        $"AppArmor is not enabled in this host's kernel: profile \"{Sandboxes.SandboxValidator.Printable(profile.LocalhostRef)}\" cannot be applied");
                return profile.LocalhostRef;
            default:
                throw new InvalidArgumentException($"{field}.profile_type", $"unknown profile type {(int)profile.ProfileType}");
        }
    }
}

/// <summary>Unconfined, the runtime's default (built from the container's final capabilities), or a given profile.</summary>
internal sealed record SeccompChoice(LinuxSeccomp? Profile, bool IsRuntimeDefault = false)
{
    public static readonly SeccompChoice Unconfined = new((LinuxSeccomp?)null);
    public static readonly SeccompChoice RuntimeDefault = new((LinuxSeccomp?)null, true);
}
