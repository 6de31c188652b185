using Converge.Hosting.Metadata;
using Xunit;

namespace Converge.Tests.Infrastructure;

/// <summary>
/// A private PostgreSQL server for one test class (xunit class fixture): started in a temporary
/// directory on a free 127.0.0.1 port, stopped by PID with an immediate shutdown on dispose.
/// Each test takes a database of its own from <see cref="CreateDatabaseAsync"/>.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private const int StartAttempts = 3;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "converge-pg-" + Guid.NewGuid().ToString("N"));
    private PrivatePostgres? _server;
    private int _databaseCount;

    public PrivatePostgres Server => _server ?? throw new InvalidOperationException("The PostgreSQL fixture has not started.");

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(StartTimeout);

        // The free port can be taken between probing and binding; a fresh port then fixes it.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                _server = await PrivatePostgres.StartAsync(_directory, PrivatePostgres.FindFreePort(), timeout.Token);
                return;
            }
            catch (InvalidOperationException) when (attempt < StartAttempts)
            {
            }
        }
    }

    /// <summary>Creates a new, empty database and returns its connection string.</summary>
    public Task<string> CreateDatabaseAsync(string prefix)
    {
        var name = $"{prefix}_{Interlocked.Increment(ref _databaseCount)}";
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return Server.EnsureDatabaseAsync(name, timeout.Token);
    }

    public async Task DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await PrivatePostgres.StopAsync(_directory, PostgresStopMode.Immediate, timeout.Token);
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
