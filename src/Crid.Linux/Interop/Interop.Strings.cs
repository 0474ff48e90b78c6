using System.Text;

namespace Crid.Linux;

internal static partial class Interop
{
    /// <summary>
    /// A path or name as the NUL-terminated UTF-8 that Tmds.LibC's <c>byte*</c> parameters take (null
    /// stays null, a null pointer under <c>fixed</c>).
    /// </summary>
    /// <exception cref="ArgumentException">it holds a NUL, which would silently cut it short.</exception>
    internal static byte[]? Utf8Z(string? s)
    {
        if (s is null)
        {
            return null;
        }

        if (s.Contains('\0'))
        {
            throw new ArgumentException($"\"{s.Replace("\0", "\\0", StringComparison.Ordinal)}\" contains NUL", nameof(s));
        }

        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }
}
