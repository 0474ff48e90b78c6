[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

// Real containers on two shared cores: one test at a time keeps "noticed within a second" honest
// and the leak checks of one test from seeing another's containers.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
