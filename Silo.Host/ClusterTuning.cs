using Orleans.Configuration;

namespace Converge.Hosting;

/// <summary>
/// Membership and messaging settings. A dead storage silo must be noticed in seconds, not the default tens of
/// seconds, because writes wait on it; the data path also never relies on Orleans' 30 s response timeout.
/// </summary>
public static class ClusterTuning
{
    /// <summary>How long silos and clients wait for a TCP connection to open.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long a grain call without a timeout of its own, or a call to a system target, waits for its answer.</summary>
    public static readonly TimeSpan ResponseTimeout = TimeSpan.FromSeconds(10);

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
        // The options type is the silo's own: the runtime reads SiloMessagingOptions, and a setting made on the base type
        // MessagingOptions is silently never applied.
        silo.Configure<SiloMessagingOptions>(o =>
        {
            o.ResponseTimeout = ResponseTimeout;
            // Calls to system targets (grain directory lookups and registrations among them) have a timeout of their
            // own, 30 s by default. A directory lookup that a restarted, then paused storage silo never answered held a
            // forced attach for 31 s in a fault drill (RELIABILITY.md): give up on such a call as soon as on any other,
            // so that the caller's retry asks again.
            o.SystemResponseTimeout = ResponseTimeout;
        });
        // A silo cut off the network answers a connection attempt with silence, not a refusal: give up on it after 2 s
        // (the default 5 s) so calls and probes move on. A connect on a working network completes in the kernel even
        // when the peer process is starved, in well under a second.
        silo.Configure<ConnectionOptions>(o => o.OpenConnectionTimeout = ConnectTimeout);
    }
}
