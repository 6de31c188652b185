using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;

namespace Converge.Client;

/// <summary>
/// A connection to a Converge cluster for .NET applications, the CLI and tests. Dispose it to disconnect.
/// </summary>
public sealed class ConvergeClient : IAsyncDisposable
{
    private readonly IHost _host;

    private ConvergeClient(IHost host)
    {
        _host = host;
        Cluster = host.Services.GetRequiredService<IClusterClient>();
    }

    public IClusterClient Cluster { get; }

    /// <summary>Connects through the given silo gateways (the embedded cluster's, or any known gateways).</summary>
    public static Task<ConvergeClient> ConnectAsync(IReadOnlyList<IPEndPoint> gateways, string clusterId, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ConnectAsync(client => client.UseStaticClustering(gateways.ToArray()), clusterId, timeout, cancellationToken);

    /// <summary>Connects through the PostgreSQL membership table (cluster mode).</summary>
    public static Task<ConvergeClient> ConnectPostgresAsync(string connectionString, string clusterId, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        ConnectAsync(
            client => client.UseAdoNetClustering(o =>
            {
                o.Invariant = "Npgsql";
                o.ConnectionString = connectionString;
            }),
            clusterId,
            timeout,
            cancellationToken);

    private static async Task<ConvergeClient> ConnectAsync(Action<IClientBuilder> clustering, string clusterId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(client =>
        {
            clustering(client);
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = clusterId;
                o.ServiceId = "converge";
            });
            Tune(client);
        });
        var host = builder.Build();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            await host.StartAsync(cts.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or OrleansException or TimeoutException)
        {
            host.Dispose();
            throw new ClusterUnreachableException($"cannot reach the cluster within {timeout.TotalSeconds:0} s: {e.Message}", e);
        }

        return new ConvergeClient(host);
    }

    /// <summary>How long a call without a timeout of its own waits for its answer.</summary>
    public static readonly TimeSpan ResponseTimeout = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Timeouts of the client's messaging and connections. The options type is the client's own
    /// (<see cref="ClientMessagingOptions"/>): the runtime reads that one, and a setting made on the base type
    /// <see cref="MessagingOptions"/> is silently never applied.
    /// </summary>
    public static void Tune(IClientBuilder client)
    {
        client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = ResponseTimeout);
        client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
        // A gateway cut off the network answers with silence: try the next one after 2 s (as silos do), not 5 s.
        client.Configure<ConnectionOptions>(o => o.OpenConnectionTimeout = TimeSpan.FromSeconds(2));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _host.StopAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            // A gateway that died during shutdown: nothing left to close cleanly.
        }

        _host.Dispose();
    }
}

/// <summary>The cluster could not be reached (no gateway answered in time).</summary>
public sealed class ClusterUnreachableException(string message, Exception inner) : Exception(message, inner);
