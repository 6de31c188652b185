using Converge.DataPath;
using Converge.Grains.Cluster;

namespace Converge.Grains.Controller;

public sealed partial class VolumeControllerGrain
{
    /// <summary>
    /// The two mirrors for new segment <paramref name="segmentId"/> among at least two candidates: the least loaded by
    /// open segments (write load) and undestaged NVRAM (free space), so more storage silos spread more write bandwidth.
    /// Asked of <see cref="IMirrorChoiceGrain"/>, which makes the cluster's choices one at a time so volumes opening at
    /// the same moment spread; if it cannot be reached, this controller chooses alone from the nodes' statuses. Once per
    /// segment, never per I/O; a node that does not answer its status in time is chosen only when two others are not
    /// available.
    /// </summary>
    private async Task<(string A, string B)> ChooseMirrorsAsync(Guid segmentId, List<string> candidates)
    {
        if (candidates.Count == 2)
        {
            return Shuffle(candidates[0], candidates[1]);
        }

        try
        {
            var pair = await GrainFactory.GetGrain<IMirrorChoiceGrain>(0).ChooseAsync(segmentId, [.. candidates]);
            if (pair is [var first, var second] && first != second && candidates.Contains(first) && candidates.Contains(second))
            {
                return Shuffle(first, second);
            }
        }
        catch (Exception e) when (CallFailure.Is(e))
        {
            LogChoosingAlone(_name, e.Message);
        }

        var (a, b) = MirrorScores.Choose(candidates, await MirrorScores.StatusesAsync(GrainFactory, candidates));
        return Shuffle(a, b);
    }

    /// <summary>Which mirror is A decides which one reads try first: alternate so neither takes every read.</summary>
    private static (string A, string B) Shuffle(string first, string second) =>
        Random.Shared.Next(2) == 0 ? (first, second) : (second, first);
}
