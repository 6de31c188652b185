using System.Reflection;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Converge.Hosting.Metadata;

/// <summary>
/// Applies the project's own schema and named-query scripts (<c>Sql/sqlite/*.sql</c>,
/// <c>Sql/postgresql/*.sql</c>, embedded in this assembly, applied in file-name order).
/// Safe to call at every start and from several silos at once: the scripts are idempotent and
/// run in one transaction that excludes concurrent appliers.
/// </summary>
public static class MetadataSchema
{
    /// <summary>Key of the PostgreSQL advisory lock that serialises schema application ("CVGSCHEM").</summary>
    public const long PostgresSchemaLockKey = 0x4356_4753_4348_454D;

    private const string ResourcePrefix = "Converge.Hosting.Sql.";

    /// <summary>The scripts for a mode, in the order they are applied.</summary>
    public static IReadOnlyList<(string Name, string Text)> LoadScripts(MetadataMode mode)
    {
        var folder = mode == MetadataMode.Sqlite ? "sqlite." : "postgresql.";
        var assembly = typeof(MetadataSchema).Assembly;
        var names = assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix + folder, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToArray();
        if (names.Length == 0)
        {
            throw new InvalidOperationException($"No embedded SQL scripts for {mode} in {assembly.GetName().Name}.");
        }

        var scripts = new List<(string, string)>(names.Length);
        foreach (var name in names)
        {
            scripts.Add((name[ResourcePrefix.Length..], ReadResource(assembly, name)));
        }

        return scripts;
    }

    /// <summary>Creates or upgrades the tables and named queries the Orleans ADO.NET providers need.</summary>
    public static Task EnsureSchemaAsync(MetadataOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Mode == MetadataMode.Sqlite
            ? EnsureSqliteAsync(options, cancellationToken)
            : EnsurePostgresAsync(options, cancellationToken);
    }

    private static async Task EnsureSqliteAsync(MetadataOptions options, CancellationToken cancellationToken)
    {
        var scripts = LoadScripts(MetadataMode.Sqlite);
        var builder = new SqliteConnectionStringBuilder(options.ConnectionString);
        var directory = Path.GetDirectoryName(Path.GetFullPath(builder.DataSource));
        if (directory is not null && !Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"The directory of the SQLite metadata file does not exist: {directory}");
        }

        await using var connection = new SqliteConnection(options.ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);

        await SwitchToWalAsync(connection, builder, cancellationToken).ConfigureAwait(false);

        // deferred: false is BEGIN IMMEDIATE: the write lock is taken up front (waiting as long
        // as Default Timeout allows), so two silos applying the schema run one after the other.
        await using var transaction = connection.BeginTransaction(deferred: false);
        foreach (var (_, text) in scripts)
        {
            await using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = text;
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    // WAL lets readers run beside the one writer and is a property of the file, so setting it once
    // makes every later connection, from any process, use it. The switch needs the file to itself;
    // while another process holds it SQLite answers with the old mode instead of an error, so the
    // switch is retried until the busy timeout runs out. It cannot happen inside a transaction.
    private static async Task SwitchToWalAsync(SqliteConnection connection, SqliteConnectionStringBuilder builder, CancellationToken cancellationToken)
    {
        const int RetryDelayMs = 50;
        var deadline = DateTime.UtcNow.AddSeconds(Math.Max(1, builder.DefaultTimeout));
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode = WAL;";
        while (true)
        {
            var mode = (string?)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            if (string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
            {
                return;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new InvalidOperationException(
                    $"SQLite could not switch {builder.DataSource} to WAL within {builder.DefaultTimeout} s (journal_mode is still '{mode}'); another process holds the file.");
            }

            await Task.Delay(RetryDelayMs, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task EnsurePostgresAsync(MetadataOptions options, CancellationToken cancellationToken)
    {
        var scripts = LoadScripts(MetadataMode.Postgres);
        await using var connection = new NpgsqlConnection(options.ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        // CREATE ... IF NOT EXISTS is not safe against a concurrent CREATE of the same table (it
        // can fail on the catalogue's unique index), so appliers take turns on an advisory lock
        // that the transaction's end releases.
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(@key);", connection, transaction))
        {
            lockCommand.Parameters.AddWithValue("key", PostgresSchemaLockKey);
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        foreach (var (_, text) in scripts)
        {
            await using var command = new NpgsqlCommand(text, connection, transaction);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static string ReadResource(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"Embedded SQL script {name} is missing.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
