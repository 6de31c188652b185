namespace Converge.Volumes;

/// <summary>
/// One volume's control-plane record, keyed by name. Holds size, block size, the attachment epoch and lease.
/// Nothing here is on the I/O path: it is called on create, attach, lease renewal and admin commands only.
/// </summary>
[Alias("Converge.IVolumeGrain")]
public interface IVolumeGrain : IGrainWithStringKey
{
    [Alias("Create")]
    Task<VolumeResult> CreateAsync(long sizeBytes, int blockSizeBytes);

    [Alias("Get")]
    Task<VolumeResult> GetAsync();

    [Alias("Resize")]
    Task<VolumeResult> ResizeAsync(long newSizeBytes);

    [Alias("Delete")]
    Task<VolumeResult> DeleteAsync(bool force);

    /// <summary>
    /// Attaches to <paramref name="node"/> with a new epoch. Refused while another live holder's lease runs,
    /// unless <paramref name="force"/> (operator takeover from a node known dead).
    /// </summary>
    [Alias("Attach")]
    Task<AttachResult> AttachAsync(string node, bool force);

    /// <summary>Renews the holder's lease; refused (StaleEpoch) when the epoch has moved on.</summary>
    [Alias("RenewLease")]
    Task<AttachResult> RenewLeaseAsync(string node, ulong epoch);

    [Alias("Detach")]
    Task<VolumeResult> DetachAsync(string node, ulong epoch);

    /// <summary>The segment catalogue (segments and their mirror pairs), for attach-time recovery of the dirty map.</summary>
    [Alias("Segments")]
    Task<IReadOnlyList<Converge.DataPath.SegmentRecord>> GetSegmentsAsync();

    /// <summary>
    /// Records a segment before its first append, or updates it (sealed). Refused (StaleEpoch) unless the caller holds the
    /// current epoch, so a fenced writer cannot add segments.
    /// </summary>
    [Alias("PutSegment")]
    Task<VolumeResult> PutSegmentAsync(ulong epoch, Converge.DataPath.SegmentRecord segment);

    /// <summary>Forgets segments destaged on both mirrors (attach need not scan them). Refused (StaleEpoch) unless the caller holds the current epoch.</summary>
    [Alias("RemoveSegments")]
    Task<VolumeResult> RemoveSegmentsAsync(ulong epoch, Guid[] segmentIds);
}

/// <summary>The list of volume names (a single grain, key 0). Creation and removal go through it so names stay unique.</summary>
[Alias("Converge.IVolumeCatalogGrain")]
public interface IVolumeCatalogGrain : IGrainWithIntegerKey
{
    [Alias("Create")]
    Task<VolumeResult> CreateAsync(string name, long sizeBytes, int blockSizeBytes);

    [Alias("Remove")]
    Task<VolumeResult> RemoveAsync(string name, bool force);

    [Alias("List")]
    Task<IReadOnlyList<VolumeInfo>> ListAsync();
}
