namespace Crid.Runtime;

/// <summary>The signal numbers the driver sends itself (signal(7), the same on every Linux architecture it runs on).</summary>
internal static class Signals
{
    public const int SIGKILL = 9, SIGTERM = 15;
}
