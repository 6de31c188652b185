namespace Converge.Client.Local;

public sealed partial class LocalCluster
{
    // Filled in with the private PostgreSQL server manager.
    private static Task StartPostgresAsync(ClusterLayout layout, CancellationToken cancellationToken) =>
        throw new ClusterCommandException("--postgres is not available in this build");

    private static Task StopPostgresAsync(ClusterLayout layout) => Task.CompletedTask;
}
