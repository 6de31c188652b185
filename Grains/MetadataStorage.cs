namespace Converge.Grains;

/// <summary>The grain storage provider holding control-plane state (SQLite embedded, PostgreSQL in cluster mode).</summary>
public static class MetadataStorage
{
    public const string Name = "meta";
}
