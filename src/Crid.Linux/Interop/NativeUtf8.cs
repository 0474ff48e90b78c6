using System.Runtime.InteropServices;
using System.Text;

namespace Crid.Linux;

/// <summary>
/// A NUL-terminated UTF-8 copy of a string in native memory, for Tmds.LibC's <c>byte*</c> parameters
/// where a walk passes the same name to several calls (no pinning, no managed array per call). Free
/// it with Dispose (a <c>using</c>); <see cref="Interop.Utf8Z"/> is the managed form for one call.
/// </summary>
internal readonly unsafe struct NativeUtf8 : IDisposable
{
    public readonly byte* Ptr;

    public NativeUtf8(string s)
    {
        var len = Encoding.UTF8.GetByteCount(s);
        Ptr = (byte*)NativeMemory.Alloc((nuint)len + 1);
        Encoding.UTF8.GetBytes(s, new Span<byte>(Ptr, len));
        Ptr[len] = 0;
    }

    public void Dispose() => NativeMemory.Free(Ptr);
}
