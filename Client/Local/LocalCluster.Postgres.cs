using Converge.Hosting.Metadata;

namespace Converge.Client.Local;

public sealed partial class LocalCluster
{
    private const string PostgresDatabase = "converge";

    private string PostgresDirectory => Path.Combine(DataDirectory, "postgres");

    /// <summary>Starts (or finds running) the cluster's private PostgreSQL and makes sure its database exists.</summary>
    private async Task StartPostgresAsync(ClusterLayout layout, CancellationToken cancellationToken)
    {
        var server = await PrivatePostgres.StartAsync(PostgresDirectory, layout.PostgresPort, cancellationToken);
        layout.PostgresConnectionString = await server.EnsureDatabaseAsync(PostgresDatabase, cancellationToken);
        layout.Save();
        progress.WriteLine($"  PostgreSQL on 127.0.0.1:{server.Port} (pid {server.ProcessId}, data in {PostgresDirectory})");
    }

    private async Task StopPostgresAsync(ClusterLayout layout)
    {
        if (await PrivatePostgres.StopAsync(PostgresDirectory, PostgresStopMode.Fast, CancellationToken.None))
        {
            progress.WriteLine("  stopped PostgreSQL");
        }
    }
}
