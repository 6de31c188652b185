using Converge.Cluster;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Placement;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Orleans.Runtime.Placement;

namespace Converge.Grains.Placement;

/// <summary>
/// Keeps control-plane grains (volumes, catalogue, placement maps, the storage roster) on the embedded cluster's primary
/// silo when there is one. In the embedded mode the primary already carries membership, so the cluster stands or falls
/// with it; placing the control plane there means losing any other silo never makes volumes unreachable while
/// membership catches up. With PostgreSQL membership no silo is primary and placement is left alone.
/// </summary>
public sealed class ControlPlanePlacementFilterStrategy() : PlacementFilterStrategy(order: 1);

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class ControlPlanePlacementAttribute() : PlacementFilterAttribute(new ControlPlanePlacementFilterStrategy());

/// <summary>
/// Knows the primary first by the endpoint every silo of the embedded cluster is configured with, which needs nothing
/// from other silos; the primary's metadata flag is only the fallback. Going by metadata alone, a placement decided
/// before this silo's metadata cache had heard from the primary fell back to any silo, and a control-plane grain could
/// land on a storage silo that later died (the roster was seen to, and then answered "silo unavailable").
/// </summary>
public sealed class ControlPlanePlacementFilterDirector(ISiloMetadataCache metadata, IOptions<DevelopmentClusterMembershipOptions> development)
    : IPlacementFilterDirector
{
    public IEnumerable<SiloAddress> Filter(PlacementFilterStrategy filterStrategy, PlacementTarget target, IEnumerable<SiloAddress> silos)
    {
        var all = silos as IReadOnlyCollection<SiloAddress> ?? silos.ToList();
        var primaryEndpoint = development.Value.PrimarySiloEndpoint;
        foreach (var silo in all)
        {
            if (primaryEndpoint is not null ? silo.Endpoint.Equals(primaryEndpoint) : IsFlaggedPrimary(silo))
            {
                return [silo];
            }
        }

        return all;
    }

    private bool IsFlaggedPrimary(SiloAddress silo) =>
        metadata.GetSiloMetadata(silo).Metadata.TryGetValue(NodeRoles.PrimaryKey, out var primary) && primary == "true";
}
