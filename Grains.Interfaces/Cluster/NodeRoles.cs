namespace Converge.Cluster;

/// <summary>The two silo roles and the silo metadata keys that publish a silo's role and stable node name.</summary>
public static class NodeRoles
{
    public const string Compute = "compute";
    public const string Storage = "storage";

    /// <summary>Silo metadata key holding the role.</summary>
    public const string RoleKey = "converge.role";

    /// <summary>Silo metadata key holding the stable node name (e.g. <c>storage-1</c>).</summary>
    public const string NodeKey = "converge.node";

    /// <summary>Silo metadata key holding a storage node's data-channel endpoint (<c>address:port</c>).</summary>
    public const string DataEndpointKey = "converge.data";

    /// <summary>Silo metadata key set to <c>true</c> on the embedded cluster's primary silo (it hosts membership).</summary>
    public const string PrimaryKey = "converge.primary";

    /// <summary>Separates the node name from the rest of a node-pinned grain's key: <c>storage-1/…</c>.</summary>
    public const char PinSeparator = '/';

    public static string PinnedKey(string node, string rest) => node + PinSeparator + rest;

    public static string NodeOfPinnedKey(string key)
    {
        var at = key.IndexOf(PinSeparator, StringComparison.Ordinal);
        return at < 0 ? key : key[..at];
    }
}

/// <summary>A node-pinned grain for tests and diagnostics: answers which node it runs on.</summary>
[Alias("Converge.INodeProbeGrain")]
public interface INodeProbeGrain : IGrainWithStringKey
{
    [Alias("Where")]
    Task<string> WhereAsync();
}

/// <summary>A probe placed only on compute silos (role filter), for tests and diagnostics.</summary>
[Alias("Converge.IComputeProbeGrain")]
public interface IComputeProbeGrain : IGrainWithStringKey
{
    [Alias("Where")]
    Task<string> WhereAsync();
}

/// <summary>A probe placed only on storage silos (role filter), for tests and diagnostics.</summary>
[Alias("Converge.IStorageProbeGrain")]
public interface IStorageProbeGrain : IGrainWithStringKey
{
    [Alias("Where")]
    Task<string> WhereAsync();
}
