using System.Diagnostics;
using Converge.DataPath;
using Converge.Storage;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Controller;

/// <summary>
/// One choice of segment mirrors at a time for the cluster (not reentrant: a choice runs to its end before the next
/// starts). A node's load counts its open segments, as it reports them, together with the segments chosen here for it
/// in the last <see cref="RememberFor"/>: a segment is recorded in the catalogue and only then gets its first append, so
/// a node does not know of it for a moment, and choices made in that moment would otherwise not see each other. Counted
/// by segment id, so a segment the node already reports is not counted twice. Held in memory only: after a move of
/// this grain the first choices see only what the nodes report, as before.
/// </summary>
[Placement.ControlPlanePlacement]
public sealed partial class MirrorChoiceGrain(ILogger<MirrorChoiceGrain> logger) : Grain, IMirrorChoiceGrain
{
    /// <summary>Long enough for a chosen segment to get its first append (or its writer to give up on it).</summary>
    internal static readonly TimeSpan RememberFor = TimeSpan.FromSeconds(30);

    /// <summary>Bounds the memory of a burst of choices.</summary>
    private const int MaxRemembered = 4096;

    /// <summary>
    /// A burst of choices (every volume of a failed node moving at once) shares one round of status calls rather than
    /// waiting, one choice after another, for each round; what the statuses miss meanwhile the remembered choices add.
    /// </summary>
    internal static readonly TimeSpan StatusesFor = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Patience for a node this activation has not heard from yet: its first status call may activate the node's status
    /// grain and run code not yet compiled there (a cluster just started, or this grain just moved), which on a busy
    /// machine can take longer than <see cref="MirrorScores.StatusPatience"/>. Without it, every choice in the next
    /// <see cref="StatusesFor"/> would treat such a node as silent, and a burst of choices would pile onto the others.
    /// Well under the 3 s a controller waits for a choice, so a choice queued behind this one still gets its answer.
    /// </summary>
    internal static readonly TimeSpan FirstContactPatience = TimeSpan.FromMilliseconds(1500);

    private readonly Queue<(Guid Segment, string A, string B, long At)> _recent = new();
    private readonly HashSet<string> _heardFrom = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (StorageNodeStatus? Status, long At)> _statuses = new(StringComparer.Ordinal);

    public async Task<string[]> ChooseAsync(Guid segmentId, string[] candidates)
    {
        var distinct = candidates.Distinct(StringComparer.Ordinal).ToArray();
        if (distinct.Length < 2)
        {
            return [];
        }

        var statuses = await StatusesAsync(distinct);
        Forget();
        var (first, second) = MirrorScores.Choose(distinct, statuses, (i, status) => OpenSegments(distinct[i], status));
        if (_recent.Count == MaxRemembered)
        {
            _recent.Dequeue();
        }

        _recent.Enqueue((segmentId, first, second, Stopwatch.GetTimestamp()));
        return [first, second];
    }

    /// <summary>
    /// The node's open segments and those chosen for it here recently, each segment once; for a node that did not
    /// answer (<paramref name="status"/> null) only the recent choices, so that a burst of choices among silent nodes
    /// still takes them in turn.
    /// </summary>
    private int OpenSegments(string node, StorageNodeStatus? status)
    {
        var reported = status?.OpenSegmentIds ?? [];
        var count = status?.OpenSegments ?? 0;
        foreach (var (segment, a, b, _) in _recent)
        {
            if ((a == node || b == node) && Array.IndexOf(reported, segment) < 0)
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>Each candidate's status, asked again only when the one held is older than <see cref="StatusesFor"/>.</summary>
    private async Task<StorageNodeStatus?[]> StatusesAsync(string[] candidates)
    {
        var stale = candidates.Where(n => !_statuses.TryGetValue(n, out var held) || Stopwatch.GetElapsedTime(held.At) > StatusesFor).ToArray();
        if (stale.Length > 0)
        {
            var fresh = await MirrorScores.StatusesAsync(
                GrainFactory, stale, node => _heardFrom.Contains(node) ? MirrorScores.StatusPatience : FirstContactPatience);
            var now = Stopwatch.GetTimestamp();
            for (var i = 0; i < stale.Length; i++)
            {
                _statuses[stale[i]] = (fresh[i], now);
                if (fresh[i] is null)
                {
                    LogSilent(stale[i], StatusesFor.TotalSeconds);
                }
                else
                {
                    _heardFrom.Add(stale[i]);
                }
            }
        }

        return [.. candidates.Select(n => _statuses[n].Status)];
    }

    private void Forget()
    {
        while (_recent.TryPeek(out var oldest) && Stopwatch.GetElapsedTime(oldest.At) > RememberFor)
        {
            _recent.Dequeue();
        }
    }

    [LoggerMessage(Level = LogLevel.Warning,
        Message = "Storage node {Node} did not answer its status in time; for the next {Seconds} s it is chosen as a mirror only when two others are not available")]
    private partial void LogSilent(string node, double seconds);
}
