using System.Globalization;
using Crid.Core.Errors;
using Runtime.V1;

namespace Crid.Core.Containers;

/// <summary>
/// The signal StopContainer sends first: the config's stop_signal, else the image's StopSignal
/// (image-spec config.md: "a name such as SIGKILL or SIGRTMIN+3, or an unsigned number"), else
/// SIGTERM. Numbers are signal(7)'s for x86 and arm (the architectures runc runs here).
/// </summary>
public static class StopSignals
{
    public const int SIGTERM = 15, SIGKILL = 9;

    // SIGRTMIN as userspace sees it: glibc keeps the kernel's 32 and 33 for itself (moby's table does the same).
    private const int RtMin = 34, RtMax = 64;

    private static readonly Dictionary<string, int> Numbers = new(StringComparer.Ordinal)
    {
        ["HUP"] = 1, ["INT"] = 2, ["QUIT"] = 3, ["ILL"] = 4, ["TRAP"] = 5, ["ABRT"] = 6, ["IOT"] = 6, ["BUS"] = 7,
        ["FPE"] = 8, ["KILL"] = 9, ["USR1"] = 10, ["SEGV"] = 11, ["USR2"] = 12, ["PIPE"] = 13, ["ALRM"] = 14,
        ["TERM"] = 15, ["STKFLT"] = 16, ["CHLD"] = 17, ["CLD"] = 17, ["CONT"] = 18, ["STOP"] = 19, ["TSTP"] = 20,
        ["TTIN"] = 21, ["TTOU"] = 22, ["URG"] = 23, ["XCPU"] = 24, ["XFSZ"] = 25, ["VTALRM"] = 26, ["PROF"] = 27,
        ["WINCH"] = 28, ["IO"] = 29, ["POLL"] = 29, ["PWR"] = 30, ["SYS"] = 31,
    };

    /// <summary>The number of the signal to stop a container with.</summary>
    /// <exception cref="InvalidArgumentException">the config names an unknown signal.</exception>
    /// <exception cref="FailedPreconditionException">the image's StopSignal is not a signal.</exception>
    public static int Of(ContainerConfig config, string imageStopSignal)
    {
        if (config.StopSignal != Signal.RuntimeDefault)
        {
            if (FromProto(config.StopSignal) is not { } fromConfig)
                throw new InvalidArgumentException("config.stop_signal", $"unknown signal {(int)config.StopSignal}");
            return fromConfig;
        }
        if (imageStopSignal.Length == 0)
            return SIGTERM;
        return Parse(imageStopSignal)
            ?? throw new FailedPreconditionException($"the image's StopSignal \"{imageStopSignal}\" is not a signal");
    }

    /// <summary>"SIGQUIT", "QUIT", "3", "SIGRTMIN+3", "RTMAX-1": the number, or null.</summary>
    public static int? Parse(string text)
    {
        var s = text.Trim().ToUpperInvariant();
        if (int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            return n is >= 1 and <= RtMax ? n : null;
        if (s.StartsWith("SIG", StringComparison.Ordinal))
            s = s[3..];
        if (Numbers.TryGetValue(s, out var known))
            return known;
        int? rt = null;
        if (s.StartsWith("RTMIN", StringComparison.Ordinal))
            rt = Offset(s[5..], RtMin, +1);
        else if (s.StartsWith("RTMAX", StringComparison.Ordinal))
            rt = Offset(s[5..], RtMax, -1);
        return rt is >= RtMin and <= RtMax ? rt : null;
    }

    private static int? Offset(string rest, int basis, int sign)
    {
        if (rest.Length == 0)
            return basis;
        if (rest[0] is not ('+' or '-') || !int.TryParse(rest[1..], NumberStyles.None, CultureInfo.InvariantCulture, out var k))
            return null;
        return basis + (rest[0] == '+' ? k : -k);
    }

    // api.proto's Signal enum, values 1 to 34 (alphabetical); from SIGRTMIN = 35 on, value - 1 is the signal.
    private static readonly string[] ProtoNames =
    [
        "", "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL",
        "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1",
        "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];

    /// <summary>The CRI enum value of a signal number; RUNTIME_DEFAULT for a number it has no name for.</summary>
    public static Signal ToProto(int number)
    {
        for (var v = 1; v <= 65; v++)
        {
            if (FromProto((Signal)v) == number)
                return (Signal)v;
        }
        return Signal.RuntimeDefault;
    }

    private static int? FromProto(Signal signal) => (int)signal switch
    {
        >= 1 and < 35 and var v => Numbers[ProtoNames[v]],
        >= 35 and <= 65 and var v => v - 1,
        _ => null,
    };
}
