using System.Globalization;
using System.Text;

namespace Crid.Streaming.Tests.Client;

/// <summary>The client half of kubelet's portforward protocol, as client-go drives it per local connection.</summary>
internal static class PortForwardClient
{
    /// <summary>
    /// One forwarded connection: the error stream (closed at once on our side) and the data stream,
    /// the request written, our half closed, and everything read until the server ends both.
    /// </summary>
    public static async Task<(string Data, string Error)> ExchangeAsync(SpdyTestClient client, int port, int requestId, string request, bool closeAfterWriting = true)
    {
        var id = requestId.ToString(CultureInfo.InvariantCulture);
        var p = port.ToString(CultureInfo.InvariantCulture);
        var error = await client.OpenAsync(("streamType", "error"), ("port", p), ("requestID", id));
        await error.CloseAsync();
        var data = await client.OpenAsync(("streamType", "data"), ("port", p), ("requestID", id));
        var errorText = error.ReadAllTextAsync(TimeSpan.FromSeconds(60));
        var dataText = data.ReadAllTextAsync(TimeSpan.FromSeconds(60));
        if (request.Length > 0)
            await data.WriteAsync(Encoding.UTF8.GetBytes(request));
        if (closeAfterWriting)
            await data.CloseAsync();
        return (await dataText, await errorText);
    }

    public static Task<(string Data, string Error)> GetAsync(SpdyTestClient client, int port, int requestId, string path = "/index.html") =>
        ExchangeAsync(client, port, requestId, $"GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n");
}
