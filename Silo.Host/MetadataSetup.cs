using Converge.Hosting.Metadata;

namespace Converge.Hosting;

/// <summary>Configures where control-plane state lives: SQLite (embedded) or PostgreSQL (cluster mode).</summary>
public static class MetadataSetup
{
    public static MetadataOptions Options(SiloSettings settings) =>
        settings.UsesPostgres
            ? MetadataOptions.ForPostgres(settings.MetadataConnection)
            : MetadataOptions.ForSqliteFile(settings.MetadataConnection);

    /// <summary>Applies the schema scripts before the silo starts (every start; idempotent and safe beside other silos).</summary>
    public static Task PrepareAsync(SiloSettings settings, CancellationToken cancellationToken)
    {
        if (!settings.UsesPostgres)
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(settings.MetadataConnection));
            if (directory is not null)
            {
                Directory.CreateDirectory(directory);
            }
        }

        return MetadataSchema.EnsureSchemaAsync(Options(settings), cancellationToken);
    }

    public static void Configure(ISiloBuilder silo, SiloSettings settings) =>
        silo.UseConvergeMetadata(Options(settings), applySchemaAtStart: false);
}
