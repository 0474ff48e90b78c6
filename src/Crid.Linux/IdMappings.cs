namespace Crid.Linux;

/// <summary>Checks uid/gid mappings before the kernel sees them, so errors name the field.</summary>
internal static class IdMappings
{
    // user_namespaces(7): since Linux 4.15 a map holds at most 340 lines.
    internal const int MaxLines = 340;

    internal static void Validate(IReadOnlyList<IdMapping> mappings, string field)
    {
        if (mappings.Count == 0)
        {
            throw new ArgumentException($"{field}: at least one mapping is required with a new user namespace", field);
        }

        if (mappings.Count > MaxLines)
        {
            throw new ArgumentException($"{field}: {mappings.Count} mappings exceed the kernel limit of {MaxLines}", field);
        }

        bool rootMapped = false;
        for (int i = 0; i < mappings.Count; i++)
        {
            var m = mappings[i] ?? throw new ArgumentException($"{field}[{i}]: null mapping", field);
            if (m.Length == 0)
            {
                throw new ArgumentException($"{field}[{i}]: length must be > 0", field);
            }

            if ((ulong)m.ContainerId + m.Length > (ulong)uint.MaxValue + 1 || (ulong)m.HostId + m.Length > (ulong)uint.MaxValue + 1)
            {
                throw new ArgumentException($"{field}[{i}]: start + length overflows 32 bits", field);
            }

            // (uid_t)-1 is the "no id" value; the kernel refuses ranges that reach it.
            if ((ulong)m.ContainerId + m.Length > uint.MaxValue || (ulong)m.HostId + m.Length > uint.MaxValue)
            {
                throw new ArgumentException($"{field}[{i}]: range includes id 4294967295", field);
            }

            rootMapped |= m.ContainerId == 0;
            for (int j = 0; j < i; j++)
            {
                var o = mappings[j];
                if (Overlaps(m.ContainerId, o.ContainerId, m.Length, o.Length))
                {
                    throw new ArgumentException($"{field}[{i}]: container range overlaps {field}[{j}]", field);
                }

                if (Overlaps(m.HostId, o.HostId, m.Length, o.Length))
                {
                    throw new ArgumentException($"{field}[{i}]: host range overlaps {field}[{j}]", field);
                }
            }
        }

        if (!rootMapped)
        {
            throw new ArgumentException($"{field}: container id 0 must be mapped", field);
        }
    }

    internal static uint HostIdOfRoot(IReadOnlyList<IdMapping> mappings)
    {
        foreach (var m in mappings)
        {
            if (m.ContainerId == 0)
            {
                return m.HostId;
            }
        }

        throw new InvalidOperationException("container id 0 is not mapped");
    }

    /// <summary>The text written in one write(2) to /proc/pid/uid_map, as the kernel requires.</summary>
    internal static string Format(IReadOnlyList<IdMapping> mappings)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var m in mappings)
        {
            sb.Append(m.ContainerId).Append(' ').Append(m.HostId).Append(' ').Append(m.Length).Append('\n');
        }

        return sb.ToString();
    }

    private static bool Overlaps(uint a, uint b, uint lenA, uint lenB)
        => (ulong)a < (ulong)b + lenB && (ulong)b < (ulong)a + lenA;
}
