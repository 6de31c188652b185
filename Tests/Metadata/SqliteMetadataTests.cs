using Converge.Hosting.Metadata;
using Xunit;

namespace Converge.Tests.Metadata;

/// <summary>Embedded mode: grain state in one SQLite file in a temporary directory.</summary>
public sealed class SqliteMetadataTests : MetadataBehaviour, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("converge-sqlite-").FullName;

    protected override IReadOnlyCollection<string> ExpectedQueryKeys => StorageQueryKeys;

    protected override Task<MetadataOptions> CreateDatabaseAsync() =>
        Task.FromResult(MetadataOptions.ForSqliteFile(Path.Combine(_directory, $"meta-{Guid.NewGuid():N}.db")));

    [Fact]
    public async Task Schema_PutsTheFileInWalMode()
    {
        var metadata = await CreateDatabaseAsync();
        using var timeout = new CancellationTokenSource(CallTimeout);
        await MetadataSchema.EnsureSchemaAsync(metadata, timeout.Token);
        Assert.Equal("wal", await ScalarAsync<string>(metadata, "PRAGMA journal_mode"));
    }

    [Fact]
    public async Task SilosSharingOneFile_WriteConcurrently_AndEveryWriteLands()
    {
        const int GrainCount = 16;
        const int IncrementsPerGrain = 5;
        var metadata = await CreateDatabaseAsync();
        await using var a = await MetadataSilo.StartAsync(metadata, "shared-a", ServiceId);
        await using var b = await MetadataSilo.StartAsync(metadata, "shared-b", ServiceId);

        // Each silo owns its own grains (two clusters would otherwise fight over one row), but
        // both write the same file at the same time.
        async Task Hammer(MetadataSilo silo, string prefix)
        {
            var calls = new List<Task<int>>(GrainCount);
            for (var round = 0; round < IncrementsPerGrain; round++)
            {
                calls.Clear();
                for (var i = 0; i < GrainCount; i++)
                {
                    calls.Add(silo.Grains.GetGrain<IMetaCounterGrain>($"{prefix}-{i}").Increment());
                }

                await Task.WhenAll(calls).WaitAsync(CallTimeout);
            }
        }

        await Task.WhenAll(Hammer(a, "a"), Hammer(b, "b"));

        Assert.Equal(2L * GrainCount, await ScalarAsync<long>(metadata, "SELECT count(*) FROM OrleansStorage"));
        Assert.Equal(2L * GrainCount * IncrementsPerGrain, await ScalarAsync<long>(metadata, "SELECT sum(Version) FROM OrleansStorage"));
    }

    [Fact]
    public void Options_RejectBadInput()
    {
        Assert.Throws<ArgumentException>(() => MetadataOptions.ForSqliteFile(" "));
        Assert.Throws<ArgumentOutOfRangeException>(() => MetadataOptions.ForSqliteFile("x.db", busyTimeoutSeconds: 0));
        Assert.Throws<ArgumentException>(() => MetadataOptions.ForPostgres("Host=127.0.0.1"));
        Assert.Throws<ArgumentException>(() => new MetadataOptions(MetadataMode.Postgres, ""));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
