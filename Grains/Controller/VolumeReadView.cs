using System.Collections.Concurrent;
using System.Diagnostics;
using Converge.Grains.Cache;

namespace Converge.Grains.Controller;

/// <summary>
/// The read fast path of one volume on this compute node: while the node's volume controller serves the volume, the NBD
/// gateway answers a read whose every block is current in the RAM cache itself, on its own thread, with no grain call.
/// Anything else (a miss, a dirty block not cached at its LSN, zeroes, a partial block, a volume not served here) goes to
/// the controller as before.
/// </summary>
/// <remarks>
/// The rule is the controller's own first step (<c>ReadBlocksAsync</c>): a block with a dirty entry is a hit only at
/// exactly the entry's LSN, a block with none at any LSN. The controller publishes its dirty map (a concurrent map it
/// updates in place) when an attach is ready, revokes it before anything that could make a cached copy unprovable
/// (lease lost or fenced, close, detach, deactivation, a new attach), and renews the publication's lease with its own:
/// it lapses at the same margin as the controller's I/O (80% of the lease) if renewals stop. A write updates the dirty
/// entry before its acknowledgement, so a read issued after a write was acknowledged sees the new entry; a read racing a
/// write may see either version, as NBD allows. A publication of an older epoch never replaces a newer one, and an
/// activation can revoke only its own.
/// </remarks>
public sealed class VolumeReadView(BlockCache cache)
{
    /// <summary>Larger reads go to the controller: their block lookups would hold up the connection's reader.</summary>
    public const int MaxReadBytes = 1024 * 1024;

    private readonly object _lock = new();
    private Publication? _current;

    /// <summary>
    /// Fills <paramref name="destination"/> (whole blocks at a block-aligned <paramref name="offsetBytes"/>) from the RAM
    /// cache if every block is provably current there. False changes nothing the caller relies on: the destination may be
    /// partly written, and the caller asks the controller.
    /// </summary>
    public bool TryRead(long offsetBytes, Span<byte> destination)
    {
        var p = Volatile.Read(ref _current);
        var now = Stopwatch.GetTimestamp();
        if (p is null || now >= Volatile.Read(ref p.ServeUntilTicks))
        {
            return false;
        }

        var bs = p.BlockSizeBytes;
        if (destination.Length == 0 || destination.Length > MaxReadBytes || offsetBytes < 0 || offsetBytes % bs != 0 || destination.Length % bs != 0
            || offsetBytes > p.SizeBytes - destination.Length)
        {
            return false;
        }

        var first = offsetBytes / bs;
        var count = destination.Length / bs;
        for (var i = 0; i < count; i++)
        {
            var target = destination.Slice(i * bs, bs);
            var hit = p.Dirty.TryGetValue(first + i, out var dirty)
                ? !dirty.Zero && cache.TryReadRam(p.VolumeId, first + i, dirty.Lsn, target)
                : cache.TryReadRam(p.VolumeId, first + i, lsn: null, target);
            if (!hit)
            {
                return false;
            }
        }

        cache.CountDirectRead(count, destination.Length, now);
        return true;
    }

    /// <summary>True while a publication is current (its lease may still lapse): for tests and diagnostics.</summary>
    public bool IsPublished => Volatile.Read(ref _current) is not null;

    /// <summary>Serves from <paramref name="publication"/> unless a newer epoch is published already.</summary>
    internal void Publish(Publication publication)
    {
        lock (_lock)
        {
            if (_current is null || _current.Epoch <= publication.Epoch)
            {
                Volatile.Write(ref _current, publication);
            }
        }
    }

    /// <summary>
    /// Stops serving a publication older than <paramref name="epoch"/>, whoever owns it: a new attachment exists, so the
    /// older one's dirty map may be stale (its activation may not have learnt it yet).
    /// </summary>
    internal void RevokeOlderThan(ulong epoch)
    {
        lock (_lock)
        {
            if (_current is { } current && current.Epoch < epoch)
            {
                Volatile.Write(ref _current, null);
            }
        }
    }

    /// <summary>Stops serving if <paramref name="owner"/>'s publication is the current one.</summary>
    internal void Revoke(object owner)
    {
        lock (_lock)
        {
            if (_current?.Owner == owner)
            {
                Volatile.Write(ref _current, null);
            }
        }
    }

    /// <summary>One controller activation's attachment, as the fast path sees it.</summary>
    internal sealed class Publication(object owner, ulong epoch, Guid volumeId, int blockSizeBytes, long sizeBytes, ConcurrentDictionary<long, VolumeControllerGrain.DirtyEntry> dirty, long serveUntilTicks)
    {
        public long ServeUntilTicks = serveUntilTicks;

        public object Owner { get; } = owner;

        public ulong Epoch { get; } = epoch;

        public Guid VolumeId { get; } = volumeId;

        public int BlockSizeBytes { get; } = blockSizeBytes;

        public long SizeBytes { get; } = sizeBytes;

        public ConcurrentDictionary<long, VolumeControllerGrain.DirtyEntry> Dirty { get; } = dirty;
    }
}

/// <summary>This compute node's read views, one per volume name, kept for the node's life (a few hundred bytes each).</summary>
public sealed class VolumeReadViews(BlockCache cache)
{
    private readonly ConcurrentDictionary<string, VolumeReadView> _views = new(StringComparer.Ordinal);

    /// <summary>The view of <paramref name="volumeName"/>, created on first use.</summary>
    public VolumeReadView Get(string volumeName) => _views.GetOrAdd(volumeName, static (_, c) => new VolumeReadView(c), cache);
}
