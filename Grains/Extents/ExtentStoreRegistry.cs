using Converge.Grains.Cluster;
using Converge.Grains.Io;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Extents;

/// <summary>
/// The node's open placement-group stores, shared by replica grains so a grain deactivation does not reopen files.
/// Bounded: at most <see cref="MaxOpenStores"/> stay open (each caches a few extents' handles); the least recently used
/// store that nobody holds is closed first. Every store is disposed with the silo.
/// </summary>
public sealed class ExtentStoreRegistry(LocalNode node, ILoggerFactory loggers, IStorageFileSystem? fileSystem = null) : IDisposable
{
    public const int MaxOpenStores = 128;

    /// <summary>Extents whose handles each store keeps open: 128 stores x 8 extents x 2 files bounds descriptors.</summary>
    private const int CachedExtentsPerStore = 8;

    private readonly object _lock = new();
    private readonly Dictionary<(Guid VolumeId, int Group), Entry> _stores = [];
    private readonly ExtentInstruments _instruments = new();
    private readonly IStorageFileSystem _fileSystem = fileSystem ?? PosixFileSystem.Instance;
    private long _clock;
    private bool _disposed;

    /// <summary>
    /// A lease on the store of one group replica, opened (created when missing) under the node's data directory.
    /// Dispose the lease when done; the store stays open for the next caller.
    /// </summary>
    /// <exception cref="InvalidOperationException">The store is open with another block size.</exception>
    public Lease Acquire(Guid volumeId, int group, int blockSizeBytes)
    {
        List<PlacementGroupStore>? evicted = null;
        Lease lease;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_stores.TryGetValue((volumeId, group), out var entry) || entry.Store.IsFailed)
            {
                var options = new ExtentStoreOptions { BlockSizeBytes = blockSizeBytes, MaxCachedExtents = CachedExtentsPerStore };
                var store = PlacementGroupStore.Open(_fileSystem, node.DataDirectory, volumeId, group, options, _instruments,
                    loggers.CreateLogger<PlacementGroupStore>());
                if (entry is not null)
                {
                    (evicted ??= []).Add(entry.Store);
                }

                entry = new Entry(store);
                _stores[(volumeId, group)] = entry;
            }

            if (entry.Store.BlockSizeBytes != blockSizeBytes)
            {
                throw new InvalidOperationException($"group {group} of volume {volumeId:D} is open with {entry.Store.BlockSizeBytes}-byte blocks, not {blockSizeBytes}");
            }

            entry.Holders++;
            entry.LastUsed = ++_clock;
            lease = new Lease(this, entry);
            while (_stores.Count > MaxOpenStores && EvictOneLocked() is { } victim)
            {
                (evicted ??= []).Add(victim);
            }
        }

        DisposeOutsideLock(evicted);
        return lease;
    }

    /// <summary>The node's data directory; extent files live under its <c>extents/</c>.</summary>
    public string DataDirectory => node.DataDirectory;

    /// <summary>The block size an open store uses, or null when it is not open.</summary>
    public int? BlockSizeOf(Guid volumeId, int group)
    {
        lock (_lock)
        {
            return _stores.TryGetValue((volumeId, group), out var entry) ? entry.Store.BlockSizeBytes : null;
        }
    }

    /// <summary>Forgets a store whose files were deleted (the caller already disposed it through Delete).</summary>
    public void Forget(Guid volumeId, int group)
    {
        lock (_lock)
        {
            _stores.Remove((volumeId, group));
        }
    }

    public void Dispose()
    {
        List<PlacementGroupStore> all;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            all = [.. _stores.Values.Select(e => e.Store)];
            _stores.Clear();
        }

        DisposeOutsideLock(all);
        _instruments.Dispose();
    }

    private PlacementGroupStore? EvictOneLocked()
    {
        KeyValuePair<(Guid, int), Entry>? oldest = null;
        foreach (var pair in _stores)
        {
            if (pair.Value.Holders == 0 && (oldest is null || pair.Value.LastUsed < oldest.Value.Value.LastUsed))
            {
                oldest = pair;
            }
        }

        if (oldest is null)
        {
            // Every store is in use: overshoot the bound briefly rather than close a store under a caller.
            return null;
        }

        _stores.Remove(oldest.Value.Key);
        return oldest.Value.Value.Store;
    }

    private static void DisposeOutsideLock(List<PlacementGroupStore>? stores)
    {
        foreach (var store in stores ?? [])
        {
            try
            {
                store.Dispose();
            }
            catch (ObjectDisposedException)
            {
                // Deleted meanwhile.
            }
        }
    }

    private void Release(Entry entry)
    {
        lock (_lock)
        {
            entry.Holders--;
        }
    }

    private sealed class Entry(PlacementGroupStore store)
    {
        public PlacementGroupStore Store { get; } = store;

        public int Holders { get; set; }

        public long LastUsed { get; set; }
    }

    public readonly struct Lease : IDisposable
    {
        private readonly ExtentStoreRegistry _owner;
        private readonly Entry _entry;

        internal Lease(ExtentStoreRegistry owner, object entry)
        {
            _owner = owner;
            _entry = (Entry)entry;
        }

        public PlacementGroupStore Store => _entry.Store;

        public void Dispose() => _owner.Release(_entry);
    }
}
