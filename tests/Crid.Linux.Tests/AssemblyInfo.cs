[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// The hygiene tests compare the process's threads and children before and after; tests of
// other classes running alongside (spawning nsenter) would blur that picture.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
