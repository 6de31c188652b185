using Converge.Storage;

namespace Converge.Grains.Controller;

/// <summary>
/// How loaded a storage node is as a mirror for a new segment: its open segments (write load) and undestaged NVRAM
/// (free space), plus a little randomness so equal nodes are picked in turn. Used by <see cref="MirrorChoiceGrain"/>
/// and, when that cannot be reached, by a controller choosing alone.
/// </summary>
internal static class MirrorScores
{
    /// <summary>How long a status may take before the choice is made without it.</summary>
    public static readonly TimeSpan StatusPatience = TimeSpan.FromMilliseconds(500);

    /// <summary>An open segment weighs as much as this much undestaged NVRAM.</summary>
    public const long OpenSegmentWeightBytes = 64L << 20;

    /// <summary>Random spread added to each score; below one open segment's weight, so it only breaks near-ties.</summary>
    public const long JitterBytes = 16L << 20;

    /// <summary>
    /// Every candidate's status, null for one that did not answer within its patience: <see cref="StatusPatience"/>, or
    /// what <paramref name="patience"/> gives for that node.
    /// </summary>
    public static async Task<StorageNodeStatus?[]> StatusesAsync(
        IGrainFactory grains, IReadOnlyList<string> candidates, Func<string, TimeSpan>? patience = null) =>
        await Task.WhenAll(candidates.Select(async node =>
        {
            try
            {
                return await grains.GetGrain<IStorageNodeGrain>(IStorageNodeGrain.Key(node)).GetStatusAsync()
                    .WaitAsync(patience?.Invoke(node) ?? StatusPatience);
            }
            catch (Exception e) when (e is OrleansException or TimeoutException or Placement.NodeUnavailableException)
            {
                return (StorageNodeStatus?)null;
            }
        }));

    /// <summary>
    /// The two lowest scores, least loaded first; nodes that did not answer come last, those with the fewest open
    /// segments known of them first (random among equals). <paramref name="openSegments"/> gives a node's open segment
    /// count from its status (null for a node that did not answer); by default the status's own, and 0 without one.
    /// </summary>
    public static (string First, string Second) Choose(
        IReadOnlyList<string> candidates, IReadOnlyList<StorageNodeStatus?> statuses, Func<int, StorageNodeStatus?, int>? openSegments = null)
    {
        var scored = new List<(string Node, long Score)>(candidates.Count);
        var silent = new List<(string Node, int Open, int Tie)>();
        for (var i = 0; i < candidates.Count; i++)
        {
            if (statuses[i] is { } status)
            {
                var open = openSegments?.Invoke(i, status) ?? status.OpenSegments;
                scored.Add((candidates[i], (open * OpenSegmentWeightBytes) + status.NvramUsedBytes + Random.Shared.NextInt64(JitterBytes)));
            }
            else
            {
                silent.Add((candidates[i], openSegments?.Invoke(i, null) ?? 0, Random.Shared.Next()));
            }
        }

        scored.Sort((x, y) => x.Score.CompareTo(y.Score));
        var chosen = scored.Select(s => s.Node)
            .Concat(silent.OrderBy(s => s.Open).ThenBy(s => s.Tie).Select(s => s.Node))
            .Take(2)
            .ToArray();
        return (chosen[0], chosen[1]);
    }
}
