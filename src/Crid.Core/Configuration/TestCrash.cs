namespace Crid.Core.Configuration;

/// <summary>
/// TEST ONLY: crash injection at named points of the crash windows (after CNI ADD, before the record;
/// after CNI DEL, before the status). Off unless <see cref="CridOptions.TestOnlyCrashAt"/> names the
/// point; the check is a string comparison on an immutable option, nothing else runs in production.
/// </summary>
public static class TestCrash
{
    /// <summary>The environment variable the entry point reads into <see cref="CridOptions.TestOnlyCrashAt"/>.</summary>
    public const string EnvironmentVariable = "CRID_TEST_ONLY_CRASH_AT";

    /// <summary>RunPodSandbox: the pod network is attached, the sandbox's record is not written.</summary>
    public const string RunAfterCniAdd = "run-after-cni-add";

    /// <summary>RunPodSandbox: the pins, the folder with its /dev/shm and files exist, the record does not.</summary>
    public const string RunBeforeRecord = "run-before-record";

    /// <summary>StopPodSandbox: the pod network is detached, the sandbox's status still says attached.</summary>
    public const string StopAfterCniDel = "stop-after-cni-del";

    /// <summary>RemovePodSandbox: the pins' uuid record is gone, the sandbox's record is not.</summary>
    public const string RemoveAfterIntentDropped = "remove-after-intent-dropped";

    /// <summary>SIGKILLs the daemon when <paramref name="point"/> is the one the options name.</summary>
    internal static void At(CridOptions options, string point)
    {
        if (options.TestOnlyCrashAt.Length == 0 || options.TestOnlyCrashAt != point)
            return;
        // SIGKILL, as a crash: no finally block, no disposal, no flush runs.
        System.Diagnostics.Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }
}
