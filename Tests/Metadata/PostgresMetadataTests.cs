using Converge.Hosting.Metadata;
using Converge.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Xunit;

namespace Converge.Tests.Metadata;

/// <summary>Cluster mode: grain state and membership on a private PostgreSQL server.</summary>
public sealed class PostgresMetadataTests(PostgresServer postgres) : MetadataBehaviour, IClassFixture<PostgresServer>
{
    private static readonly string[] ClusteringQueryKeys =
    [
        "CleanupDefunctSiloEntriesKey", "DeleteMembershipTableEntriesKey", "GatewaysQueryKey",
        "InsertMembershipKey", "InsertMembershipVersionKey", "MembershipReadAllKey",
        "MembershipReadRowKey", "UpdateIAmAlivetimeKey", "UpdateMembershipKey",
    ];

    protected override IReadOnlyCollection<string> ExpectedQueryKeys => [.. StorageQueryKeys, .. ClusteringQueryKeys];

    protected override async Task<MetadataOptions> CreateDatabaseAsync() =>
        MetadataOptions.ForPostgres(await postgres.CreateDatabaseAsync("meta"));

    [Fact]
    public async Task Silos_JoinThroughMembershipTable_AndClientFindsGatewaysThere()
    {
        const string ClusterId = "membership";
        var metadata = await CreateDatabaseAsync();
        await using var first = await MetadataSilo.StartAsync(metadata, ClusterId, ServiceId);
        await using var second = await MetadataSilo.StartAsync(metadata, ClusterId, ServiceId);

        // Both silos are Active (status 3) rows of one cluster, each on the ports it was given.
        Assert.Equal(2L, await ScalarAsync<long>(metadata,
            $"SELECT count(*) FROM OrleansMembershipTable WHERE DeploymentId = '{ClusterId}' AND Status = 3"));
        Assert.Equal(1L, await ScalarAsync<long>(metadata,
            $"SELECT count(*) FROM OrleansMembershipTable WHERE DeploymentId = '{ClusterId}' AND Port = {second.SiloPort} AND ProxyPort = {second.GatewayPort}"));
        Assert.True(await ScalarAsync<long>(metadata,
            $"SELECT Version FROM OrleansMembershipVersionTable WHERE DeploymentId = '{ClusterId}'") >= 2);

        using var client = new HostBuilder()
            .UseOrleansClient(c =>
            {
                c.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = ClusterId;
                    o.ServiceId = ServiceId;
                });
                c.UseAdoNetClustering(o =>
                {
                    o.Invariant = metadata.Invariant;
                    o.ConnectionString = metadata.ConnectionString;
                });
            })
            .Build();
        await client.StartAsync().WaitAsync(MetadataSilo.StartStopTimeout);
        var grains = client.Services.GetRequiredService<IClusterClient>();
        Assert.Equal(1, await grains.GetGrain<IMetaCounterGrain>("via-client").Increment().WaitAsync(CallTimeout));
        Assert.Equal(1, await first.Grains.GetGrain<IMetaCounterGrain>("via-client").Read().WaitAsync(CallTimeout));
        await client.StopAsync().WaitAsync(MetadataSilo.StartStopTimeout);
    }
}
