using Converge.Cluster;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Converge.Grains.Cluster;

/// <summary>Which nodes are active members right now, by role, as this silo's membership view sees them.</summary>
public sealed class ClusterView(IClusterMembershipService membership, ISiloMetadataCache metadata)
{
    /// <summary>
    /// The active nodes of <paramref name="role"/>, waiting (bounded by <paramref name="timeout"/>) until there are at
    /// least <paramref name="minimum"/>: a node that just restarted, or a membership view that lags, is worth a short
    /// wait before an operation fails. Returns whatever is active at the deadline.
    /// </summary>
    public async Task<IReadOnlyList<string>> WaitForActiveNodesAsync(string role, int minimum, TimeSpan timeout)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        var nodes = ActiveNodes(role);
        while (nodes.Count < minimum && deadline.Elapsed < timeout)
        {
            await Task.Delay(200);
            nodes = ActiveNodes(role);
        }

        return nodes;
    }

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
            // A restarted node is listed twice until membership declares its old incarnation dead: one name, one node.
            if (meta.TryGetValue(NodeRoles.RoleKey, out var r) && r == role && meta.TryGetValue(NodeRoles.NodeKey, out var node)
                && !nodes.Contains(node, StringComparer.Ordinal))
            {
                nodes.Add(node);
            }
        }

        nodes.Sort(StringComparer.Ordinal);
        return nodes;
    }

    /// <summary>
    /// Every node of <paramref name="role"/> the membership table lists in any state, dead incarnations included (a
    /// silo's name is its node name, <c>role-N</c>): the nodes that have been members of this cluster.
    /// </summary>
    public IReadOnlyList<string> KnownNodes(string role)
    {
        var nodes = new List<string>();
        var prefix = role + "-";
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Name is { } name && name.StartsWith(prefix, StringComparison.Ordinal) && !nodes.Contains(name, StringComparer.Ordinal))
            {
                nodes.Add(name);
            }
        }

        nodes.Sort(StringComparer.Ordinal);
        return nodes;
    }
}
