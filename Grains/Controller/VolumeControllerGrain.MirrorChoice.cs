using Converge.Storage;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    /// <summary>How long a segment choice waits for the candidates' status before choosing without it.</summary>
    private static readonly TimeSpan StatusPatience = TimeSpan.FromMilliseconds(500);

    /// <summary>An open segment weighs as much as this much undestaged NVRAM when comparing candidates.</summary>
    private const long OpenSegmentWeightBytes = 64L << 20;

    /// <summary>Random spread added to each score, so volumes choosing at the same moment do not all pick one pair.</summary>
    private const long JitterBytes = 16L << 20;

    /// <summary>
    /// The two mirrors for a new segment among at least two candidates: the least loaded by open segments (write load)
    /// and undestaged NVRAM (free space), so more storage silos spread more write bandwidth. Asked once per segment,
    /// never per I/O; a node that does not answer its status in time is chosen only when two others are not available.
    /// </summary>
    private async Task<(string A, string B)> ChooseMirrorsAsync(List<string> candidates)
    {
        if (candidates.Count == 2)
        {
            return Shuffle(candidates[0], candidates[1]);
        }

        var statuses = await Task.WhenAll(candidates.Select(StatusOrNullAsync));
        var scored = new List<(string Node, long Score)>(candidates.Count);
        var silent = new List<string>();
        for (var i = 0; i < candidates.Count; i++)
        {
            if (statuses[i] is { } status)
            {
                scored.Add((candidates[i], (status.OpenSegments * OpenSegmentWeightBytes) + status.NvramUsedBytes + Random.Shared.NextInt64(JitterBytes)));
            }
            else
            {
                silent.Add(candidates[i]);
            }
        }

        scored.Sort((x, y) => x.Score.CompareTo(y.Score));
        var chosen = scored.Select(s => s.Node).Concat(silent.OrderBy(_ => Random.Shared.Next())).Take(2).ToArray();
        return Shuffle(chosen[0], chosen[1]);
    }

    private async Task<StorageNodeStatus?> StatusOrNullAsync(string node)
    {
        try
        {
            return await GrainFactory.GetGrain<IStorageNodeGrain>(IStorageNodeGrain.Key(node)).GetStatusAsync().WaitAsync(StatusPatience);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException or Placement.NodeUnavailableException)
        {
            return null;
        }
    }

    /// <summary>Which mirror is A decides which one reads try first: alternate so neither takes every read.</summary>
    private static (string A, string B) Shuffle(string first, string second) =>
        Random.Shared.Next(2) == 0 ? (first, second) : (second, first);
}
