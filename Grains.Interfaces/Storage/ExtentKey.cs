namespace Converge.Storage;

/// <summary>
/// Names one extent: a fixed-size range of one volume (by its immutable id, never its name) in one snapshot.
/// <see cref="SnapshotId"/> is reserved now and is always <see cref="LiveSnapshotId"/> for the live volume.
/// </summary>
[GenerateSerializer, Immutable, Alias("Converge.Storage.ExtentKey")]
public readonly record struct ExtentKey
{
    public const ulong LiveSnapshotId = 0;

    public ExtentKey(Guid volumeId, ulong snapshotId, long extentIndex)
    {
        if (extentIndex < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(extentIndex), extentIndex, "extent index must not be negative");
        }

        VolumeId = volumeId;
        SnapshotId = snapshotId;
        ExtentIndex = extentIndex;
    }

    [Id(0)]
    public Guid VolumeId { get; }

    [Id(1)]
    public ulong SnapshotId { get; }

    [Id(2)]
    public long ExtentIndex { get; }

    public override string ToString() => $"{VolumeId:N}/s{SnapshotId}/e{ExtentIndex}";
}
