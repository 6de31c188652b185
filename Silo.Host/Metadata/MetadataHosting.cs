using System.Data.Common;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Orleans.Configuration;
using Orleans.Runtime;

namespace Converge.Hosting.Metadata;

/// <summary>Wires a silo to the metadata database through Orleans' ADO.NET providers.</summary>
public static class MetadataHosting
{
    /// <summary>The grain storage name for control-plane state: <c>[PersistentState("x", MetadataHosting.StorageName)]</c>.</summary>
    public const string StorageName = Converge.Grains.MetadataStorage.Name;

    /// <summary>
    /// Configures grain storage <see cref="StorageName"/> on the metadata database and, in
    /// <see cref="MetadataMode.Postgres"/>, ADO.NET clustering on the same database. In
    /// <see cref="MetadataMode.Sqlite"/> the caller configures clustering (localhost clustering:
    /// SQLite has no Orleans clustering provider). With <paramref name="applySchemaAtStart"/> the
    /// schema scripts run at the very first silo lifecycle stage, before membership or storage read
    /// their named queries.
    /// </summary>
    public static ISiloBuilder UseConvergeMetadata(this ISiloBuilder builder, MetadataOptions options, bool applySchemaAtStart = true)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);

        RegisterProviderFactories();

        builder.AddAdoNetGrainStorage(StorageName, storage =>
        {
            storage.Invariant = options.Invariant;
            storage.ConnectionString = options.ConnectionString;
        });

        if (options.Mode == MetadataMode.Postgres)
        {
            builder.UseAdoNetClustering(clustering =>
            {
                clustering.Invariant = options.Invariant;
                clustering.ConnectionString = options.ConnectionString;
            });
        }

        if (applySchemaAtStart)
        {
            builder.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(new SchemaAtStart(options));
        }

        return builder;
    }

    /// <summary>
    /// Registers both invariants with <see cref="DbProviderFactories"/> for code that resolves
    /// providers by name. Orleans' ADO.NET providers do not need it: they load the factory type
    /// from the provider assembly by name; this also makes the compiler keep both assemblies.
    /// </summary>
    public static void RegisterProviderFactories()
    {
        DbProviderFactories.RegisterFactory(MetadataOptions.SqliteInvariant, SqliteFactory.Instance);
        DbProviderFactories.RegisterFactory(MetadataOptions.PostgresInvariant, NpgsqlFactory.Instance);
    }

    private sealed class SchemaAtStart(MetadataOptions options) : ILifecycleParticipant<ISiloLifecycle>
    {
        public void Participate(ISiloLifecycle lifecycle) =>
            lifecycle.Subscribe(nameof(MetadataSchema), ServiceLifecycleStage.First, ct => MetadataSchema.EnsureSchemaAsync(options, ct));
    }
}
