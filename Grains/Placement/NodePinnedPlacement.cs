using Converge.Cluster;
using Orleans.Placement;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Converge.Grains.Placement;

/// <summary>
/// Pins a grain to the node named by the first part of its string key (<c>storage-1/…</c>). Such grains own files
/// on that node's disk, so they must never activate anywhere else.
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.NodePinnedPlacement")]
public sealed class NodePinnedPlacement : PlacementStrategy
{
    public static readonly NodePinnedPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class NodePinnedPlacementAttribute() : PlacementAttribute(NodePinnedPlacement.Instance);

/// <summary>Chooses the silo whose node-name metadata equals the node in the grain key (its newest incarnation).</summary>
public sealed class NodePinnedPlacementDirector(ISiloMetadataCache metadata) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString() ?? "";
        var node = NodeRoles.NodeOfPinnedKey(key);
        SiloAddress? chosen = null;
        foreach (var silo in context.GetCompatibleSilos(target))
        {
            // A restarted node has two incarnations until membership declares the old one dead: the newest is the node.
            if (metadata.GetSiloMetadata(silo).Metadata.TryGetValue(NodeRoles.NodeKey, out var siloNode) && siloNode == node
                && (chosen is null || silo.Generation > chosen.Generation))
            {
                chosen = silo;
            }
        }

        return chosen is not null ? Task.FromResult(chosen) : throw new NodeUnavailableException(node, target.GrainIdentity.ToString());
    }
}
