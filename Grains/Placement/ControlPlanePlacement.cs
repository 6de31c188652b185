using Converge.Cluster;
using Orleans.Placement;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Converge.Grains.Placement;

/// <summary>
/// Keeps control-plane grains (volumes, catalogue, placement maps) on the embedded cluster's primary silo when there is
/// one. In the embedded mode the primary already carries membership, so the cluster stands or falls with it; placing
/// the control plane there means losing any other silo never makes volumes unreachable while membership catches up.
/// With PostgreSQL membership no silo is primary and placement is left alone.
/// </summary>
public sealed class ControlPlanePlacementFilterStrategy() : PlacementFilterStrategy(order: 1);

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class ControlPlanePlacementAttribute() : PlacementFilterAttribute(new ControlPlanePlacementFilterStrategy());

public sealed class ControlPlanePlacementFilterDirector(ISiloMetadataCache metadata) : IPlacementFilterDirector
{
    public IEnumerable<SiloAddress> Filter(PlacementFilterStrategy filterStrategy, PlacementTarget target, IEnumerable<SiloAddress> silos)
    {
        var all = silos as IReadOnlyCollection<SiloAddress> ?? silos.ToList();
        foreach (var silo in all)
        {
            if (metadata.GetSiloMetadata(silo).Metadata.TryGetValue(NodeRoles.PrimaryKey, out var primary) && primary == "true")
            {
                return [silo];
            }
        }

        return all;
    }
}
