namespace Crid.Core.Configuration;

/// <summary>
/// TEST ONLY: crash injection at named points of the crash windows (after CNI ADD, before the record;
/// after CNI DEL, before the status; a container's create before its start byte or its record).
/// Off unless <see cref="CridOptions.TestOnlyCrashAt"/> names the point; the check is a string comparison on an immutable option, nothing else runs in production.
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

    /// <summary>
    /// CreateContainer: the bundle is whole (rootfs mounted, config.json in place), the runtime's
    /// monitor waits on its start pipe.
    /// </summary>
    public const string CreateBeforeStartByte = "create-before-start-byte";

    /// <summary>CreateContainer: runc created the container under its monitor, the record is not written.</summary>
    public const string CreateBeforeRecord = "create-before-record";

    /// <summary>SIGKILLs the daemon when <paramref name="point"/> is the one the options name.</summary>
    internal static void At(CridOptions options, string point) => At(options.TestOnlyCrashAt, point);

    /// <summary>
    /// SIGKILLs the daemon when <paramref name="point"/> is <paramref name="configured"/>: for a
    /// component that gets the option passed on (the runtime driver's <c>TestOnlyCrashAt</c>).
    /// </summary>
    public static void At(string configured, string point)
    {
        if (configured.Length == 0 || configured != point)
            return;
        // SIGKILL, as a crash: no finally block, no disposal, no flush runs.
        System.Diagnostics.Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }
}
