using Converge.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Rereplication;

/// <summary>
/// On every storage silo: every few seconds asks the storage roster to remove storage nodes that have stayed down for
/// <see cref="RemoveAfter"/> (<see cref="IStorageRosterGrain.CheckDeadNodesAsync"/>). The roster keeps the clock, so
/// one activation decides however many silos ask; a failed call (control plane moving, silo starting) is skipped, and
/// logged when asking starts to fail.
/// </summary>
public sealed partial class DeadNodeWatch(IGrainFactory grains, TimeSpan removeAfter, ILogger<DeadNodeWatch> logger) : BackgroundService
{
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(5);

    public TimeSpan RemoveAfter { get; } = removeAfter;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (RemoveAfter <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new PeriodicTimer(Period);
        var failing = false;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await grains.GetGrain<IStorageRosterGrain>(0).CheckDeadNodesAsync(RemoveAfter);
                failing = false;
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // The control plane is not reachable now (or failed this once); the roster's clock keeps running, so asking
                // later is enough. Nothing may escape: a background service that throws stops the whole silo.
                if (!failing)
                {
                    failing = true;
                    LogCheckFailed(logger, e.GetType().Name, e.Message);
                }
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Asking the storage roster for dead storage nodes failed ({Type}: {Reason}); asking again every 5 s")]
    private static partial void LogCheckFailed(ILogger logger, string type, string reason);
}

public static class DeadNodeWatchRegistration
{
    /// <summary>Adds the watch; <paramref name="removeAfter"/> zero or less leaves removal to the operator.</summary>
    public static IServiceCollection AddDeadNodeWatch(this IServiceCollection services, TimeSpan removeAfter) =>
        services.AddHostedService(sp => new DeadNodeWatch(sp.GetRequiredService<IGrainFactory>(), removeAfter, sp.GetRequiredService<ILogger<DeadNodeWatch>>()));
}
