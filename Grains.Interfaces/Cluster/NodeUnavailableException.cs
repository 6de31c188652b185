namespace Converge.Grains.Placement;

// Declared beside the contracts (not with the placement director) so every client can deserialize it: a client without
// the type sees an unreadable reply instead of the node's name.
/// <summary>Raised when a node-pinned grain's node is not an active member: activation fails fast instead of moving.</summary>
[GenerateSerializer, Alias("Converge.NodeUnavailableException")]
public sealed class NodeUnavailableException : Exception
{
    public NodeUnavailableException(string node, string grain)
        : base($"node '{node}' is not in the cluster; {grain} lives only there and cannot be activated elsewhere")
    {
        Node = node;
    }

    [Id(0)]
    public string Node { get; private set; } = "";
}
