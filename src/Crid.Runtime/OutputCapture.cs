using System.Net.Sockets;

namespace Crid.Runtime;

/// <summary>How many bytes the outputs of one process may still keep, shared by its stdout and stderr.</summary>
internal sealed class OutputBudget(int limit)
{
    private int _left = limit;
    private int _truncated;

    public bool Truncated => Volatile.Read(ref _truncated) != 0;

    /// <summary>How many of <paramref name="count"/> new bytes to keep.</summary>
    public int Take(int count)
    {
        while (true)
        {
            int left = Volatile.Read(ref _left);
            int take = Math.Min(left, count);
            if (Interlocked.CompareExchange(ref _left, left - take, left) == left)
            {
                if (take < count)
                {
                    Volatile.Write(ref _truncated, 1);
                }

                return take;
            }
        }
    }
}

/// <summary>Reads one of a child's outputs from our end of a socket pair, keeping what the budget allows.</summary>
internal static class OutputCapture
{
    /// <summary>
    /// Reads until end of file and keeps at most the budget; the rest is read and dropped, so the
    /// writer never blocks on a full socket. Cancelling ends the read early with what was kept.
    /// </summary>
    public static async Task<byte[]> CollectAsync(Socket socket, OutputBudget budget, CancellationToken cancellationToken)
    {
        var kept = new MemoryStream();
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                kept.Write(buffer, 0, budget.Take(n));
            }
        }
        catch (OperationCanceledException)
        {
            // The process is done and whatever still holds the other end is not ours to wait for.
        }
        catch (SocketException)
        {
            // The peer vanished (ECONNRESET): what came before is still the output.
        }
        finally
        {
            socket.Dispose();
        }

        return kept.ToArray();
    }
}
