using System.Diagnostics;
using Converge.DataPath;
using Converge.Log;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Controller;

/// <summary>
/// Reads from the previous holder's cache. After a move, the node that held the volume just before this attachment
/// still has the hot blocks; a block it sends is used only when provably current (docs/cache.md, "Peer reads"):
/// <list type="bullet">
/// <item>the peer is the holder immediately before this attachment, so its cache held only current versions when it
/// was fenced (a node drops a volume's cache when it attaches after another node held it);</item>
/// <item>the block's 4 MiB region was not written by this attachment (the only writer since the fence), so storage
/// still holds the version the peer had; a write marks its regions before it is logged;</item>
/// <item>for a block with a dirty entry, the peer's LSN equals it exactly; any block's LSN is from an older epoch.</item>
/// </list>
/// Anything else (missing, mismatched, late, failed) is read from storage.
/// </summary>
public sealed partial class VolumeControllerGrain
{
    /// <summary>The unit of "written during this attachment": one bit per region.</summary>
    private const long WrittenRegionBytes = 4L * 1024 * 1024;

    /// <summary>Consecutive failed peer calls after which this attachment stops asking (a dead or partitioned peer).</summary>
    private const int MaxPeerFailures = 3;

    private static readonly TimeSpan PeerTimeout = TimeSpan.FromMilliseconds(300);

    /// <summary>The previous holder, asked for blocks this node lacks; null when there is none or it gave up answering.</summary>
    private string? _peer;
    private ulong[] _writtenRegions = [];
    private int _peerFailures;

    /// <summary>The epoch of this activation's last attachment (0 before the first): tells a re-attach of its own.</summary>
    private ulong _peerEpoch;

    /// <summary>
    /// Called at attach: who held the volume just before, and a clean written-region set. An attachment that follows
    /// this activation's own previous one directly (nobody attached in between: <paramref name="previousEpoch"/> is the
    /// epoch it held) keeps that attachment's peer and written regions instead, so the peer stays usable. NBD clients
    /// such as fio and qemu-img connect, disconnect and connect again, and each last disconnect detaches.
    /// </summary>
    private void ResetPeer(string? previousHolder, ulong previousEpoch)
    {
        var regions = (SizeBytes + WrittenRegionBytes - 1) / WrittenRegionBytes;
        var words = (regions + 63) / 64;
        var ownEpochResumed = previousHolder == localNode.Name && previousEpoch != 0 && previousEpoch == _peerEpoch;
        _peerEpoch = AttachedEpoch;
        if (ownEpochResumed && _peer is not null && _writtenRegions.Length == words)
        {
            return;
        }

        _peer = previousHolder is not null && previousHolder != localNode.Name ? previousHolder : null;
        _peerFailures = 0;
        _writtenRegions = _peer is null ? [] : new ulong[words];
    }

    /// <summary>Marks the regions of a write (or zero) before it is logged: from then on no peer copy of them is current.</summary>
    private void MarkWritten(long offsetBytes, long lengthBytes)
    {
        if (_writtenRegions.Length == 0 || lengthBytes <= 0)
        {
            return;
        }

        var last = (offsetBytes + lengthBytes - 1) / WrittenRegionBytes;
        for (var region = offsetBytes / WrittenRegionBytes; region <= last; region++)
        {
            _writtenRegions[region >> 6] |= 1UL << (int)(region & 63);
        }
    }

    private bool RegionWritten(long block)
    {
        var region = block * BlockSizeBytes / WrittenRegionBytes;
        return (_writtenRegions[region >> 6] & (1UL << (int)(region & 63))) != 0;
    }

    /// <summary>Whether a peer copy of the block could be proven current at all (checked again when the answer arrives).</summary>
    private bool PeerMayServe(long block)
    {
        if (_peer is null || RegionWritten(block))
        {
            return false;
        }

        // A zero entry is answered from the dirty map; a dirty entry this attachment wrote is in a written region.
        return !_dirty.TryGetValue(block, out var dirty) || (dirty.Recovered && !dirty.Zero);
    }

    /// <summary>One peer call per run of missing blocks the peer may serve; validated blocks are copied and cached here.</summary>
    private async Task ReadFromPeerAsync(long firstBlock, int count, bool[] missing, byte[] result)
    {
        var i = 0;
        while (i < count && _peer is not null)
        {
            if (!missing[i] || !PeerMayServe(firstBlock + i))
            {
                i++;
                continue;
            }

            var runStart = i;
            while (i < count && missing[i] && i - runStart < ICacheNodeGrain.MaxPeerReadBlocks && PeerMayServe(firstBlock + i))
            {
                i++;
            }

            await ReadRunFromPeerAsync(firstBlock, runStart, i - runStart, missing, result);
        }
    }

    private async Task ReadRunFromPeerAsync(long firstBlock, int runStart, int runCount, bool[] missing, byte[] result)
    {
        var peer = _peer!;
        var epoch = AttachedEpoch;
        var volumeId = VolumeId;
        var bs = BlockSizeBytes;
        var counters = cache.Counters;
        var runFirst = firstBlock + runStart;
        Interlocked.Increment(ref counters.PeerCallCount);
        var started = Stopwatch.GetTimestamp();
        PeerBlocksReply reply;
        try
        {
            reply = await GrainFactory.GetGrain<ICacheNodeGrain>(ICacheNodeGrain.Key(peer))
                .PeerReadAsync(volumeId, bs, runFirst, runCount)
                .WaitAsync(PeerTimeout);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Any failure of an optional source (dead silo, timeout, not a member, bad answer) costs a storage read only.
            counters.PeerLatency.RecordSince(started);
            Interlocked.Increment(ref counters.PeerFailureCount);
            if (++_peerFailures >= MaxPeerFailures && _peer == peer)
            {
                LogPeerAbandoned(_name, peer, e.Message);
                _peer = null;
            }

            return;
        }

        counters.PeerLatency.RecordSince(started);
        _peerFailures = 0;

        // Interleaved writes, prunes or a new attachment may have changed what this node knows while the call was out.
        if (_attachment?.Epoch != epoch || _peer != peer || reply.Data is null || reply.Lsns is null
            || reply.Data.Length != runCount * bs || reply.Lsns.Length != runCount)
        {
            return;
        }

        for (var j = 0; j < runCount; j++)
        {
            var lsn = reply.Lsns[j];
            if (PeerBlocksReply.IsMissing(lsn))
            {
                continue;
            }

            var block = runFirst + j;
            if (!PeerCopyIsCurrent(block, lsn, epoch))
            {
                Interlocked.Increment(ref counters.PeerRejectedCount);
                continue;
            }

            var data = reply.Data.AsSpan(j * bs, bs);
            data.CopyTo(result.AsSpan((runStart + j) * bs, bs));
            cache.Put(volumeId, block, lsn, data);
            missing[runStart + j] = false;
            Interlocked.Increment(ref counters.PeerHitCount);
            Interlocked.Add(ref counters.PeerHitByteCount, bs);
        }
    }

    private bool PeerCopyIsCurrent(long block, Lsn lsn, ulong epoch)
    {
        if (lsn.Epoch >= epoch || !PeerMayServe(block))
        {
            return false;
        }

        return !_dirty.TryGetValue(block, out var dirty) || dirty.Lsn == lsn;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Volume {Name}: previous holder {Peer} stopped answering peer reads ({Reason}); reading from storage")]
    private partial void LogPeerAbandoned(string name, string peer, string reason);
}
