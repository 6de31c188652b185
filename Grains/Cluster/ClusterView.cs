using Converge.Cluster;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Converge.Grains.Cluster;

/// <summary>Which nodes are active members right now, by role, as this silo's membership view sees them.</summary>
public sealed class ClusterView(IClusterMembershipService membership, ISiloMetadataCache metadata)
{
    public IReadOnlyList<string> ActiveNodes(string role)
    {
        var nodes = new List<string>();
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status != SiloStatus.Active)
            {
                continue;
            }

            var meta = metadata.GetSiloMetadata(member.SiloAddress).Metadata;
            if (meta.TryGetValue(NodeRoles.RoleKey, out var r) && r == role && meta.TryGetValue(NodeRoles.NodeKey, out var node))
            {
                nodes.Add(node);
            }
        }

        nodes.Sort(StringComparer.Ordinal);
        return nodes;
    }
}
