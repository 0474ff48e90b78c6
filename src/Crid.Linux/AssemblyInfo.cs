// Everything here is Linux syscalls.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
