namespace Converge.Grains.Volumes;

/// <summary>Persisted state of one volume (metadata database, grain storage "meta").</summary>
[GenerateSerializer, Alias("Converge.VolumeState")]
public sealed class VolumeState
{
    [Id(0)] public bool Exists { get; set; }

    [Id(1)] public Guid VolumeId { get; set; }

    [Id(2)] public long SizeBytes { get; set; }

    [Id(3)] public int BlockSizeBytes { get; set; }

    /// <summary>Bumped on every attach; storage refuses appends from older epochs.</summary>
    [Id(4)] public ulong Epoch { get; set; }

    [Id(5)] public string? AttachedNode { get; set; }

    [Id(6)] public DateTime CreatedUtc { get; set; }

    /// <summary>Compute nodes that held the volume before, newest first (peer cache candidates), at most a few.</summary>
    [Id(7)] public List<string> FormerHolders { get; set; } = [];

    /// <summary>The segment catalogue: every log segment of the volume not yet known destaged, with its mirror pair.</summary>
    [Id(8)] public List<Converge.DataPath.SegmentRecord> Segments { get; set; } = [];

    /// <summary>The node that attached the volume most recently (kept after a detach), to tell a move from a re-attach.</summary>
    [Id(9)] public string? LastHolder { get; set; }
}

/// <summary>Persisted list of volume names.</summary>
[GenerateSerializer, Alias("Converge.VolumeCatalogState")]
public sealed class VolumeCatalogState
{
    [Id(0)] public List<string> Names { get; set; } = [];
}
