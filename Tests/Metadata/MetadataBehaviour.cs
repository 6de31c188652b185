using System.Data.Common;
using Converge.Hosting.Metadata;
using Orleans.Storage;
using Xunit;

namespace Converge.Tests.Metadata;

/// <summary>
/// What both metadata modes must do, run once per mode by the derived classes. Silos are real
/// in-process hosts on 127.0.0.1 TCP ports (not the in-memory test cluster); two silos sharing one
/// database are two separate clusters with the same ServiceId, so they address the same stored state.
/// </summary>
public abstract class MetadataBehaviour
{
    protected static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(30);

    protected const string ServiceId = "converge-meta-tests";

    protected abstract IReadOnlyCollection<string> ExpectedQueryKeys { get; }

    /// <summary>A fresh, empty metadata database for one test.</summary>
    protected abstract Task<MetadataOptions> CreateDatabaseAsync();

    [Fact]
    public async Task GrainState_SurvivesSiloRestart()
    {
        var metadata = await CreateDatabaseAsync();

        await using (var first = await MetadataSilo.StartAsync(metadata, "restart-a", ServiceId))
        {
            var grain = first.Grains.GetGrain<IMetaCounterGrain>("volume-1");
            Assert.Equal(1, await grain.Increment().WaitAsync(CallTimeout));
            Assert.Equal(2, await grain.Increment().WaitAsync(CallTimeout));
            Assert.Equal(3, await grain.Increment().WaitAsync(CallTimeout));
        }

        await using var second = await MetadataSilo.StartAsync(metadata, "restart-b", ServiceId);
        var reloaded = second.Grains.GetGrain<IMetaCounterGrain>("volume-1");
        Assert.Equal(3, await reloaded.Read().WaitAsync(CallTimeout));
        Assert.Equal(4, await reloaded.Increment().WaitAsync(CallTimeout));
        Assert.Equal(1L, await ScalarAsync<long>(metadata, "SELECT count(*) FROM OrleansStorage"));
    }

    [Fact]
    public async Task StaleWriter_GetsEtagConflict_AndChangesNothing()
    {
        var metadata = await CreateDatabaseAsync();
        await using var a = await MetadataSilo.StartAsync(metadata, "etag-a", ServiceId);
        await using var b = await MetadataSilo.StartAsync(metadata, "etag-b", ServiceId);

        // Update path: both activations read version 1, A writes version 2, B still holds 1.
        var onA = a.Grains.GetGrain<IMetaCounterGrain>("shared");
        var onB = b.Grains.GetGrain<IMetaCounterGrain>("shared");
        Assert.Equal(1, await onA.Increment().WaitAsync(CallTimeout));
        Assert.Equal(1, await onB.Read().WaitAsync(CallTimeout));
        Assert.Equal(2, await onA.Increment().WaitAsync(CallTimeout));
        await Assert.ThrowsAsync<InconsistentStateException>(() => onB.Increment().WaitAsync(CallTimeout));

        // Insert path: both activations saw no row; only the first insert may land.
        var freshOnA = a.Grains.GetGrain<IMetaCounterGrain>("fresh");
        var freshOnB = b.Grains.GetGrain<IMetaCounterGrain>("fresh");
        Assert.Equal(0, await freshOnA.Read().WaitAsync(CallTimeout));
        Assert.Equal(0, await freshOnB.Read().WaitAsync(CallTimeout));
        Assert.Equal(1, await freshOnA.Increment().WaitAsync(CallTimeout));
        await Assert.ThrowsAsync<InconsistentStateException>(() => freshOnB.Increment().WaitAsync(CallTimeout));

        Assert.Equal(2L, await ScalarAsync<long>(metadata, "SELECT count(*) FROM OrleansStorage"));
        Assert.Equal(3L, await ScalarAsync<long>(metadata, "SELECT sum(Version) FROM OrleansStorage"));
    }

    [Fact]
    public async Task ApplyingSchema_TwiceAndConcurrently_KeepsQueriesAndData()
    {
        var metadata = await CreateDatabaseAsync();
        using var timeout = new CancellationTokenSource(CallTimeout);
        await MetadataSchema.EnsureSchemaAsync(metadata, timeout.Token);
        await ExecuteAsync(metadata,
            "INSERT INTO OrleansStorage (GrainIdHash, GrainIdN0, GrainIdN1, GrainTypeHash, GrainTypeString, GrainIdExtensionString, ServiceId, PayloadBinary, ModifiedOn, Version) " +
            "VALUES (1, 2, 3, 4, 'kept', NULL, 'svc', NULL, CURRENT_TIMESTAMP, 7)");

        await MetadataSchema.EnsureSchemaAsync(metadata, timeout.Token);
        await Task.WhenAll(
            Task.Run(() => MetadataSchema.EnsureSchemaAsync(metadata, timeout.Token)),
            Task.Run(() => MetadataSchema.EnsureSchemaAsync(metadata, timeout.Token)),
            Task.Run(() => MetadataSchema.EnsureSchemaAsync(metadata, timeout.Token)));

        Assert.Equal(7L, await ScalarAsync<long>(metadata, "SELECT Version FROM OrleansStorage WHERE GrainTypeString = 'kept'"));
        Assert.Equal(1L, await ScalarAsync<long>(metadata, "SELECT count(*) FROM OrleansStorage"));
        var keys = await QueryKeysAsync(metadata);
        Assert.Equal(ExpectedQueryKeys.Order(StringComparer.Ordinal), keys);
    }

    /// <summary>Every key the 10.4.2 storage provider reads from OrleansQuery.</summary>
    protected static readonly string[] StorageQueryKeys =
        ["ClearStorageKey", "DeleteStorageKey", "ReadFromStorageKey", "WriteToStorageKey"];

    protected static async Task<T> ScalarAsync<T>(MetadataOptions metadata, string sql)
    {
        await using var connection = await OpenAsync(metadata);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var value = await command.ExecuteScalarAsync();
        return (T)Convert.ChangeType(value!, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }

    protected static async Task ExecuteAsync(MetadataOptions metadata, string sql)
    {
        await using var connection = await OpenAsync(metadata);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<List<string>> QueryKeysAsync(MetadataOptions metadata)
    {
        await using var connection = await OpenAsync(metadata);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT QueryKey FROM OrleansQuery";
        var keys = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            keys.Add(reader.GetString(0));
        }

        keys.Sort(StringComparer.Ordinal);
        return keys;
    }

    private static async Task<DbConnection> OpenAsync(MetadataOptions metadata)
    {
        // Resolved by invariant, the way any project code that is not Orleans would.
        MetadataHosting.RegisterProviderFactories();
        var connection = DbProviderFactories.GetFactory(metadata.Invariant).CreateConnection()!;
        connection.ConnectionString = metadata.ConnectionString;
        await connection.OpenAsync();
        return connection;
    }
}
