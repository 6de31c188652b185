using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Converge.Grains.Cluster;

/// <summary>
/// Writes every change of a silo's status in this silo's membership view to its log (Orleans' own membership logging
/// is filtered to warnings): when a killed node was declared dead, seen from each survivor, is what an operator needs
/// to read a stall after a failure. One line per changed silo, only when the view changes; deaths of silos this silo
/// never saw alive (earlier runs' incarnations, still in the table) are left out.
/// </summary>
public sealed partial class MembershipLog(IClusterMembershipService membership, ILogger<MembershipLog> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        ClusterMembershipSnapshot? previous = null;
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(stoppingToken))
            {
                var update = previous is null ? snapshot.AsUpdate() : snapshot.CreateUpdate(previous);
                foreach (var change in update.Changes)
                {
                    if (change.Status == SiloStatus.Dead && previous?.Members.ContainsKey(change.SiloAddress) != true)
                    {
                        // Dead before this silo saw it: the table keeps incarnations of earlier runs for days, and a silo
                        // starting up learns of them all at once. Only a death it saw happen is news.
                        continue;
                    }

                    LogChange(logger, snapshot.Version.Value, change.Name ?? "?", change.SiloAddress.ToString(), change.Status);
                }

                previous = snapshot;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The silo is stopping.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Membership v{Version}: {Node} ({Address}) is {Status}")]
    private static partial void LogChange(ILogger logger, long version, string node, string address, SiloStatus status);
}

public static class MembershipLogRegistration
{
    /// <summary>Logs this silo's view of membership changes (see <see cref="MembershipLog"/>).</summary>
    public static IServiceCollection AddMembershipLog(this IServiceCollection services) => services.AddHostedService<MembershipLog>();
}
