using System.Net;
using Converge.Hosting;
using Converge.Nbd;
using Converge.Nbd.Server;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Converge.SiloCompute.Nbd;

/// <summary>Runs the NBD server on the compute node's port once the silo is up, and stops it first on shutdown.</summary>
public sealed class NbdHostedService(GrainNbdBackend backend, SiloSettings settings, ILogger<NbdServer> logger) : IHostedService
{
    private NbdServer? _server;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (settings.NbdPort == 0)
        {
            return;
        }

        _server = new NbdServer(backend, new NbdServerOptions(), logger);
        await _server.StartAsync(new IPEndPoint(settings.Address, settings.NbdPort), cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null)
        {
            await _server.StopAsync(cancellationToken);
            await _server.DisposeAsync();
        }
    }
}

public static class NbdHosting
{
    public static IServiceCollection AddNbdServer(this IServiceCollection services) =>
        services.AddSingleton<GrainNbdBackend>().AddHostedService<NbdHostedService>();
}
