using Orleans.Configuration;

namespace Converge.Hosting;

/// <summary>
/// Membership and messaging settings. A dead storage silo must be noticed in seconds, not the default tens of
/// seconds, because writes wait on it; the data path also never relies on Orleans' 30 s response timeout.
/// </summary>
public static class ClusterTuning
{
    public static void Apply(ISiloBuilder silo)
    {
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(1);
            o.NumMissedProbesLimit = 2;
            o.NumVotesForDeathDeclaration = 1;
            o.TableRefreshTimeout = TimeSpan.FromSeconds(2);
            o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(5);
            o.DefunctSiloExpiration = TimeSpan.FromMinutes(10);
        });
        silo.Configure<MessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(10));
    }
}
