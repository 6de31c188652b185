using System.Diagnostics;
using Converge.DataPath;
using Converge.Volumes;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Destage;

/// <summary>
/// One mirror destages (docs/destage.md "One mirror destages"): every acknowledged record is on both copies of a
/// segment, so applying both copies doubles the log reads, transfers and replica work for nothing. The segment's id
/// picks its leader among the two mirrors named in the volume's catalogue; the other mirror (the follower) waits for the
/// leader to report its copy destaged and then releases its own without applying it. It destages its own copy after
/// all when the leader cannot vouch for its copy, cannot be reached, or has not finished within
/// <see cref="FollowerPatience"/>, and whenever the catalogue does not name it (an orphan, a pruned segment).
/// </summary>
public sealed partial class DestageService
{
    /// <summary>How long a follower waits for the leader's destage before it destages its own copy.</summary>
    public static readonly TimeSpan FollowerPatience = TimeSpan.FromSeconds(60);

    private static readonly TimeSpan FollowerPoll = TimeSpan.FromSeconds(1);

    // Read and written by destage tasks under _lock: per segment, its leader (null: destage here) and since when known.
    private readonly Dictionary<Guid, (string? Leader, long SinceTicks)> _roles = [];
    private readonly Dictionary<Guid, string> _volumeNames = [];
    private long _fromLeaderSegments;

    /// <summary>Segments this node released because their leader destaged them (not applied here).</summary>
    public int SegmentsReleasedByLeader => (int)Interlocked.Read(ref _fromLeaderSegments);

    private enum FollowerStep
    {
        DestageHere,
        ReleasedByLeader,
        Wait,
    }

    /// <summary>The mirror that destages a segment: A or B by one bit of the segment id, so the work splits evenly.</summary>
    public static string LeaderOf(SegmentRecord segment) => (segment.SegmentId.ToByteArray()[15] & 1) == 0 ? segment.MirrorA : segment.MirrorB;

    private async Task<FollowerStep> FollowLeaderAsync(Guid segmentId, Guid volumeId)
    {
        var (leader, since) = await RoleAsync(segmentId, volumeId);
        if (leader is null || leader == localNode.Name)
        {
            return FollowerStep.DestageHere;
        }

        if (Stopwatch.GetElapsedTime(since) >= FollowerPatience)
        {
            LogFollowerGaveUp(localNode.Name, segmentId, leader, "it has not finished");
            return FollowerStep.DestageHere;
        }

        LeaderDestage answer;
        try
        {
            answer = await grains.GetGrain<ILogSegmentGrain>(leader + "/" + segmentId.ToString("N")).GetLeaderDestageAsync();
        }
        catch (Exception e) when (e is OrleansException or TimeoutException)
        {
            LogFollowerGaveUp(localNode.Name, segmentId, leader, e.Message);
            return FollowerStep.DestageHere;
        }

        switch (answer)
        {
            case LeaderDestage.Destaged:
                nodeLog.Log.MarkDestaged(segmentId);
                Interlocked.Increment(ref _fromLeaderSegments);
                LogReleasedByLeader(localNode.Name, segmentId, leader);
                return FollowerStep.ReleasedByLeader;
            case LeaderDestage.Pending:
                return FollowerStep.Wait;
            default:
                LogFollowerGaveUp(localNode.Name, segmentId, leader, "its copy cannot vouch for every record");
                return FollowerStep.DestageHere;
        }
    }

    private async Task<(string? Leader, long SinceTicks)> RoleAsync(Guid segmentId, Guid volumeId)
    {
        lock (_lock)
        {
            if (_roles.TryGetValue(segmentId, out var known))
            {
                return known;
            }
        }

        string? leader = null;
        try
        {
            if (await VolumeNameAsync(volumeId) is { } name)
            {
                var segments = await grains.GetGrain<IVolumeGrain>(name).GetSegmentsAsync();
                if (segments.FirstOrDefault(s => s.SegmentId == segmentId) is { } record
                    && (record.MirrorA == localNode.Name || record.MirrorB == localNode.Name))
                {
                    leader = LeaderOf(record);
                }
            }
        }
        catch (Exception e) when (e is OrleansException or TimeoutException)
        {
            // Not cached: asked again on the next round; meanwhile this node destages it.
            return (null, Stopwatch.GetTimestamp());
        }

        var role = (leader, Stopwatch.GetTimestamp());
        lock (_lock)
        {
            _roles.TryAdd(segmentId, role);
            return _roles[segmentId];
        }
    }

    private async Task<string?> VolumeNameAsync(Guid volumeId)
    {
        lock (_lock)
        {
            if (_volumeNames.TryGetValue(volumeId, out var cached))
            {
                return cached;
            }
        }

        var volumes = await grains.GetGrain<IVolumeCatalogGrain>(0).ListAsync();
        lock (_lock)
        {
            foreach (var volume in volumes)
            {
                _volumeNames[volume.VolumeId] = volume.Name;
            }

            return _volumeNames.GetValueOrDefault(volumeId);
        }
    }

    /// <summary>Forgets roles of segments the log no longer holds undestaged (called by the destage loop).</summary>
    private void ForgetRoles(IReadOnlySet<Guid> undestaged)
    {
        lock (_lock)
        {
            foreach (var id in _roles.Keys.Where(id => !undestaged.Contains(id)).ToList())
            {
                _roles.Remove(id);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Destage on {Node}: segment {SegmentId} released, its leader {Leader} destaged it")]
    private partial void LogReleasedByLeader(string node, Guid segmentId, string leader);

    [LoggerMessage(Level = LogLevel.Information, Message = "Destage on {Node}: destaging segment {SegmentId} itself instead of its leader {Leader}: {Reason}")]
    private partial void LogFollowerGaveUp(string node, Guid segmentId, string leader, string reason);
}
