using Microsoft.Data.Sqlite;
using Npgsql;

namespace Converge.Hosting.Metadata;

/// <summary>Where the control-plane metadata (grain state, and membership in cluster mode) lives.</summary>
public enum MetadataMode
{
    /// <summary>Embedded: one SQLite file shared by every silo process on this machine; localhost clustering.</summary>
    Sqlite,

    /// <summary>Cluster: PostgreSQL for grain state and for ADO.NET clustering.</summary>
    Postgres,
}

/// <summary>The metadata database a silo uses. Build with <see cref="ForSqliteFile"/> or <see cref="ForPostgres"/>.</summary>
public sealed class MetadataOptions
{
    /// <summary>The ADO.NET invariant Orleans maps to Microsoft.Data.Sqlite.</summary>
    public const string SqliteInvariant = "System.Data.SQLite";

    /// <summary>The ADO.NET invariant Orleans maps to Npgsql.</summary>
    public const string PostgresInvariant = "Npgsql";

    /// <summary>How long a SQLite command keeps retrying while another process holds the write lock.</summary>
    public const int DefaultSqliteBusyTimeoutSeconds = 30;

    public MetadataOptions(MetadataMode mode, string connectionString)
    {
        if (!Enum.IsDefined(mode))
        {
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown metadata mode.");
        }

        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new ArgumentException("The metadata connection string is empty.", nameof(connectionString));
        }

        Mode = mode;
        ConnectionString = connectionString;
    }

    public MetadataMode Mode { get; }

    public string ConnectionString { get; }

    /// <summary>The invariant name handed to Orleans' ADO.NET providers.</summary>
    public string Invariant => Mode == MetadataMode.Sqlite ? SqliteInvariant : PostgresInvariant;

    /// <summary>
    /// Embedded mode on the SQLite file at <paramref name="databasePath"/> (created if missing).
    /// Several silo processes may share the file: the schema switches it to WAL, and
    /// <c>Default Timeout</c> bounds how long a writer waits for the lock (Microsoft.Data.Sqlite
    /// retries a busy statement until the command timeout).
    /// </summary>
    public static MetadataOptions ForSqliteFile(string databasePath, int busyTimeoutSeconds = DefaultSqliteBusyTimeoutSeconds)
    {
        if (string.IsNullOrWhiteSpace(databasePath))
        {
            throw new ArgumentException("The SQLite database path is empty.", nameof(databasePath));
        }

        if (busyTimeoutSeconds is < 1 or > 600)
        {
            throw new ArgumentOutOfRangeException(nameof(busyTimeoutSeconds), busyTimeoutSeconds, "The SQLite busy timeout must be 1..600 seconds.");
        }

        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = Path.GetFullPath(databasePath),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            DefaultTimeout = busyTimeoutSeconds,
            Pooling = true,
        };
        return new MetadataOptions(MetadataMode.Sqlite, builder.ConnectionString);
    }

    /// <summary>Cluster mode on the PostgreSQL database named by <paramref name="connectionString"/> (it must exist).</summary>
    public static MetadataOptions ForPostgres(string connectionString)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Invalid PostgreSQL connection string: {e.Message}", nameof(connectionString), e);
        }

        if (string.IsNullOrEmpty(builder.Host) || string.IsNullOrEmpty(builder.Database))
        {
            throw new ArgumentException("The PostgreSQL connection string must name a Host and a Database.", nameof(connectionString));
        }

        return new MetadataOptions(MetadataMode.Postgres, connectionString);
    }

    /// <summary>The connection string with any password hidden, for logs and errors.</summary>
    public override string ToString()
    {
        if (Mode == MetadataMode.Postgres)
        {
            var builder = new NpgsqlConnectionStringBuilder(ConnectionString);
            if (builder.Password is not null)
            {
                builder.Password = "***";
            }

            return $"Postgres: {builder.ConnectionString}";
        }

        return $"Sqlite: {ConnectionString}";
    }
}
