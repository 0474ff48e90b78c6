using Microsoft.Win32.SafeHandles;

namespace Crid.Linux;

/// <summary>A file descriptor owned by us; -1 (what a failed open returns) counts as invalid.</summary>
internal sealed class SafeFd : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafeFd() : base(ownsHandle: true)
    {
    }

    // fd 0 is a valid descriptor, unlike what the base class assumes.
    public override bool IsInvalid => handle == -1;

    protected override bool ReleaseHandle() => Interop.Close((int)handle) == 0;
}
