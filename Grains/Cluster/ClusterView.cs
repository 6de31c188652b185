using System.Net;
using Converge.Cluster;
using Orleans.Runtime.MembershipService.SiloMetadata;

namespace Converge.Grains.Cluster;

/// <summary>Which nodes are active members right now, by role, as this silo's membership view sees them.</summary>
public sealed class ClusterView(IClusterMembershipService membership, ISiloMetadataCache metadata)
{
    private volatile ResolvedEndpoints? _dataEndpoints;

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

    /// <summary>
    /// The data-channel endpoint (<see cref="NodeRoles.DataEndpointKey"/>) that the newest active incarnation of storage
    /// node <paramref name="node"/> publishes, or null when there is none. Resolved again only when membership changes.
    /// </summary>
    public IPEndPoint? DataEndpointOf(string node)
    {
        var snapshot = membership.CurrentSnapshot;
        var resolved = _dataEndpoints;
        if (resolved is null || snapshot.Version != resolved.Version)
        {
            var newest = new Dictionary<string, (SiloAddress Silo, IPEndPoint EndPoint)>(StringComparer.Ordinal);
            var complete = true;
            foreach (var member in snapshot.Members.Values)
            {
                if (member.Status != SiloStatus.Active)
                {
                    continue;
                }

                var meta = metadata.GetSiloMetadata(member.SiloAddress).Metadata;
                if (!meta.TryGetValue(NodeRoles.NodeKey, out var name))
                {
                    // The metadata of a silo that just joined may not be here yet: resolve again next time.
                    complete = false;
                    continue;
                }

                if (meta.TryGetValue(NodeRoles.DataEndpointKey, out var published) && IPEndPoint.TryParse(published, out var parsed)
                    && (!newest.TryGetValue(name, out var known) || member.SiloAddress.Generation > known.Silo.Generation))
                {
                    newest[name] = (member.SiloAddress, parsed);
                }
            }

            resolved = new ResolvedEndpoints(
                complete ? snapshot.Version : MembershipVersion.MinValue,
                newest.ToDictionary(p => p.Key, p => p.Value.EndPoint, StringComparer.Ordinal));
            _dataEndpoints = resolved;
        }

        return resolved.EndPoints.GetValueOrDefault(node);
    }

    /// <summary>Storage nodes' data endpoints as of one membership version (<see cref="MembershipVersion.MinValue"/>: incomplete).</summary>
    private sealed record ResolvedEndpoints(MembershipVersion Version, Dictionary<string, IPEndPoint> EndPoints);
}
