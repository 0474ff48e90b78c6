using System.Globalization;

namespace Crid.Core.Oci;

/// <summary>Linux capabilities by bit number (capability.h), as the OCI spec names them.</summary>
public static class CapabilityNames
{
    /// <summary>Index = bit number in /proc/&lt;pid&gt;/status's Cap* masks.</summary>
    public static readonly IReadOnlyList<string> All =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ];

    private static readonly HashSet<string> Known = [.. All];

    /// <summary>
    /// A CRI capability ("NET_ADMIN", as kubelet sends it, or "CAP_NET_ADMIN", as cri-o also
    /// accepts; any case) as the spec writes it; null when Linux has no such capability.
    /// </summary>
    public static string? Normalize(string cri)
    {
        var upper = cri.Trim().ToUpperInvariant();
        var name = upper.StartsWith("CAP_", StringComparison.Ordinal) ? upper : "CAP_" + upper;
        return Known.Contains(name) ? name : null;
    }

    /// <summary>The names of the bits set in a /proc status mask such as CapBnd ("000001fffeffffff").</summary>
    public static List<string> FromMask(string hex)
    {
        var mask = ulong.Parse(hex.Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var names = new List<string>();
        for (var bit = 0; bit < All.Count; bit++)
        {
            if ((mask & (1UL << bit)) != 0)
                names.Add(All[bit]);
        }
        return names;
    }
}
