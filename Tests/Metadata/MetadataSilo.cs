using System.Net;
using Converge.Hosting.Metadata;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;

namespace Converge.Tests.Metadata;

/// <summary>
/// A real silo in this process (<c>HostBuilder().UseOrleans</c>) on 127.0.0.1 with free TCP
/// ports, wired to the metadata database the way silo hosts do it. In SQLite mode it is alone in
/// its cluster (localhost clustering); in Postgres mode it joins through the membership table.
/// </summary>
internal sealed class MetadataSilo : IAsyncDisposable
{
    public static readonly TimeSpan StartStopTimeout = TimeSpan.FromSeconds(60);

    private readonly IHost _host;

    private MetadataSilo(IHost host, int siloPort, int gatewayPort)
    {
        _host = host;
        SiloPort = siloPort;
        GatewayPort = gatewayPort;
    }

    public int SiloPort { get; }

    public int GatewayPort { get; }

    public IGrainFactory Grains => _host.Services.GetRequiredService<IGrainFactory>();

    public static async Task<MetadataSilo> StartAsync(MetadataOptions metadata, string clusterId, string serviceId)
    {
        var siloPort = PrivatePostgres.FindFreePort();
        var gatewayPort = PrivatePostgres.FindFreePort();
        var host = new HostBuilder()
            .UseOrleans(silo =>
            {
                if (metadata.Mode == MetadataMode.Sqlite)
                {
                    silo.UseLocalhostClustering(siloPort, gatewayPort, primarySiloEndpoint: null, serviceId, clusterId);
                }
                else
                {
                    silo.Configure<ClusterOptions>(o =>
                    {
                        o.ClusterId = clusterId;
                        o.ServiceId = serviceId;
                    });
                    silo.ConfigureEndpoints(IPAddress.Loopback, siloPort, gatewayPort);
                }

                silo.UseConvergeMetadata(metadata);
            })
            .Build();
        await host.StartAsync().WaitAsync(StartStopTimeout);
        return new MetadataSilo(host, siloPort, gatewayPort);
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync().WaitAsync(StartStopTimeout);
        _host.Dispose();
    }
}
