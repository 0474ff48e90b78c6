using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Crid.Streaming.RemoteCommand;

/// <summary>
/// How an exec or attach ended, as the error stream carries it: from v4.channel.k8s.io a JSON
/// metav1.Status (Success; Failure with reason NonZeroExitCode and the code as an ExitCode cause;
/// Failure with reason InternalError), before v4 the failure's message as plain text and nothing on success.
/// </summary>
internal sealed record CommandStatus(bool Success, int? ExitCode, string Message)
{
    public static readonly CommandStatus Succeeded = new(true, null, "");

    public static CommandStatus Exited(int code) => code == 0
        ? Succeeded
        : new CommandStatus(false, code, $"command terminated with non-zero exit code: exit status {code}");

    public static CommandStatus Failed(string what, string problem) =>
        new(false, null, $"Internal error occurred: {what}: {problem}");

    /// <summary>The bytes to write on the error stream; empty for success before v4.</summary>
    public byte[] Encode(bool v4)
    {
        if (!v4)
            return Success ? [] : Encoding.UTF8.GetBytes(Message);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteEndObject();
            json.WriteString("status", Success ? "Success" : "Failure");
            if (!Success)
            {
                json.WriteString("message", Message);
                json.WriteString("reason", ExitCode is null ? "InternalError" : "NonZeroExitCode");
                json.WriteStartObject("details");
                json.WriteStartArray("causes");
                json.WriteStartObject();
                if (ExitCode is { } code)
                {
                    json.WriteString("reason", "ExitCode");
                    json.WriteString("message", code.ToString(CultureInfo.InvariantCulture));
                }
                else
                {
                    json.WriteString("message", Message);
                }
                json.WriteEndObject();
                json.WriteEndArray();
                json.WriteEndObject();
                if (ExitCode is null)
                    json.WriteNumber("code", 500);
            }
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }
}
