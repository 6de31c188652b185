using Converge.Cluster;
using Converge.Grains.Placement;

namespace Converge.Grains.Cluster;

/// <summary>Where a grain runs, as the node name this silo publishes.</summary>
public sealed class LocalNode(string name, string role, string dataDirectory)
{
    public string Name { get; } = name;

    public string Role { get; } = role;

    public string DataDirectory { get; } = dataDirectory;
}

[NodePinnedPlacement]
public sealed class NodeProbeGrain(LocalNode node) : Grain, INodeProbeGrain
{
    public Task<string> WhereAsync() => Task.FromResult(node.Name);
}

[RolePlacement(NodeRoles.Compute)]
public sealed class ComputeProbeGrain(LocalNode node) : Grain, IComputeProbeGrain
{
    public Task<string> WhereAsync() => Task.FromResult(node.Name);
}

[RolePlacement(NodeRoles.Storage)]
public sealed class StorageProbeGrain(LocalNode node) : Grain, IStorageProbeGrain
{
    public Task<string> WhereAsync() => Task.FromResult(node.Name);
}
