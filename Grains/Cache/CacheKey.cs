namespace Converge.Grains.Cache;

/// <summary>One block of one volume: the unit the cache holds. Volume ids are immutable, so a recreated volume never aliases.</summary>
public readonly record struct CacheKey(Guid VolumeId, long Block)
{
    /// <summary>A well-mixed hash, so consecutive blocks of one volume spread over the RAM tier's shards.</summary>
    public int Mix()
    {
        var h = (ulong)VolumeId.GetHashCode() * 0x9E3779B97F4A7C15UL ^ (ulong)Block * 0xC2B2AE3D27D4EB4FUL;
        h ^= h >> 29;
        return (int)h;
    }

    public override string ToString() => $"{VolumeId:N}/{Block}";
}
