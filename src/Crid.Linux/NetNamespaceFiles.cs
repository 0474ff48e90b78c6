namespace Crid.Linux;

/// <summary>Files of /proc/net as a pod's network namespace shows them.</summary>
public static class NetNamespaceFiles
{
    // A namespace with thousands of interfaces still fits; a runaway one does not grow the daemon.
    private const int MaxChars = 4 << 20;

    /// <summary>
    /// The text of <c>/proc/net/&lt;name&gt;</c> (e.g. "dev") inside the network namespace pinned
    /// at <paramref name="netnsPath"/>. /proc/net is the *reading task's* namespace (proc(5): it
    /// links to /proc/self/net, and /proc/thread-self/net is the calling thread's), so the file is
    /// opened and read on a namespace worker that has joined the pod's namespace, and the caller
    /// awaits: no thread-pool thread enters the namespace or waits for the worker.
    /// </summary>
    /// <exception cref="SyscallException">the namespace cannot be entered (a pin that is gone).</exception>
    /// <exception cref="IOException">the file cannot be read.</exception>
    public static async Task<string> ReadProcNetAsync(string netnsPath, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(netnsPath);
        if (name.Length == 0 || name.Contains('/') || name.StartsWith('.'))
            throw new ArgumentException($"\"{name}\" is not a /proc/net file name", nameof(name));
        string? text = null;
        await NamespaceThreads.RunAsync([netnsPath, null, null], () =>
        {
            // thread-self, not self: a multithreaded process's /proc/self/net is its main thread's namespace.
            using var stream = new FileStream("/proc/thread-self/net/" + name, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
            using var reader = new StreamReader(stream);
            var sb = new System.Text.StringBuilder();
            var buffer = new char[4096];
            int read;
            while ((read = reader.Read(buffer, 0, buffer.Length)) > 0)
            {
                if (sb.Length + read > MaxChars)
                    throw new IOException($"/proc/net/{name} of {netnsPath} is longer than {MaxChars} characters");
                sb.Append(buffer, 0, read);
            }
            text = sb.ToString();
        }).ConfigureAwait(false);
        return text!;
    }
}
