using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Npgsql;

namespace Converge.Hosting.Metadata;

/// <summary>How <see cref="PrivatePostgres"/> stops the server (pg_ctl's shutdown modes).</summary>
public enum PostgresStopMode
{
    /// <summary>Disconnects clients and checkpoints: the next start needs no recovery.</summary>
    Fast,

    /// <summary>Kills the server without a checkpoint, like a crash: committed data survives through WAL replay.</summary>
    Immediate,
}

/// <summary>
/// A private PostgreSQL server in a directory of its own, listening on 127.0.0.1 only. The data
/// survives stop and start, so the same directory is one cluster's metadata "volume". Used by
/// <c>converge up --postgres</c> and by tests.
/// </summary>
/// <remarks>
/// Layout of <see cref="Directory"/>: <c>pgdata/</c> (the PostgreSQL data directory),
/// <c>superuser.password</c> (the password of <see cref="SuperUser"/>), <c>postgres.log</c>.
/// PostgreSQL refuses to run as root; when this process is root the server runs as the system
/// user <see cref="ServiceUser"/> (created on first use) and the directory is handed to it.
/// </remarks>
public sealed partial class PrivatePostgres
{
    /// <summary>The database superuser created by initdb.</summary>
    public const string SuperUser = "converge";

    /// <summary>The system user the server runs as when this process is root.</summary>
    public const string ServiceUser = "converge-pg";

    private const string DataFolder = "pgdata";
    private const string PasswordFile = "superuser.password";
    private const string LogFile = "postgres.log";
    private const int StartTimeoutSeconds = 60;

    private readonly string _password;

    private PrivatePostgres(string directory, int port, int processId, string password)
    {
        Directory = directory;
        Port = port;
        ProcessId = processId;
        _password = password;
    }

    /// <summary>The directory holding the data, the password and the log.</summary>
    public string Directory { get; }

    /// <summary>The TCP port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The postmaster's process id.</summary>
    public int ProcessId { get; }

    /// <summary>The server log, for error reports.</summary>
    public string LogPath => Path.Combine(Directory, LogFile);

    /// <summary>
    /// Starts the server in <paramref name="directory"/> on 127.0.0.1:<paramref name="port"/>,
    /// creating the data directory on first use. If a server is already running there, returns it
    /// (on the port it was started with).
    /// </summary>
    public static async Task<PrivatePostgres> StartAsync(string directory, int port, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (port is < 1024 or > 65535)
        {
            throw new ArgumentOutOfRangeException(nameof(port), port, "The PostgreSQL port must be 1024..65535.");
        }

        directory = Path.GetFullPath(directory);
        var binaries = FindBinaries();
        var runAs = Environment.IsPrivilegedProcess ? await EnsureServiceUserAsync(cancellationToken).ConfigureAwait(false) : null;
        PrepareDirectory(directory);
        if (runAs is not null)
        {
            await RunAsync("chown", [$"{runAs}:{runAs}", directory], null, cancellationToken).ConfigureAwait(false);
            var reachable = await RunAsync("test", ["-w", directory], runAs, cancellationToken, allowFailure: true).ConfigureAwait(false);
            if (reachable.ExitCode != 0)
            {
                throw new InvalidOperationException(
                    $"User {runAs} cannot reach {directory}: every parent directory needs search (x) permission for others.");
            }
        }

        var dataDirectory = Path.Combine(directory, DataFolder);
        var running = TryReadRunning(dataDirectory);
        if (running is { } r)
        {
            return new PrivatePostgres(directory, r.Port, r.ProcessId, ReadPassword(directory));
        }

        if (!File.Exists(Path.Combine(dataDirectory, "PG_VERSION")))
        {
            await InitializeAsync(binaries, directory, dataDirectory, runAs, cancellationToken).ConfigureAwait(false);
        }

        var logPath = Path.Combine(directory, LogFile);
        var result = await RunAsync(
            binaries.PgCtl,
            ["-D", dataDirectory, "-l", logPath, "-w", "-t", StartTimeoutSeconds.ToString(CultureInfo.InvariantCulture),
             "-o", $"-p {port.ToString(CultureInfo.InvariantCulture)}", "start"],
            runAs,
            cancellationToken,
            allowFailure: true).ConfigureAwait(false);
        var started = TryReadRunning(dataDirectory);
        if (result.ExitCode != 0 || started is null)
        {
            throw new InvalidOperationException(
                $"PostgreSQL did not start in {directory} on port {port} (pg_ctl exit {result.ExitCode}): {result.Output}\nLog tail:\n{ReadLogTail(logPath)}");
        }

        return new PrivatePostgres(directory, started.Value.Port, started.Value.ProcessId, ReadPassword(directory));
    }

    /// <summary>Stops the server running in <paramref name="directory"/>, if any; returns whether one was running.</summary>
    public static async Task<bool> StopAsync(string directory, PostgresStopMode mode, CancellationToken cancellationToken)
    {
        directory = Path.GetFullPath(directory);
        var dataDirectory = Path.Combine(directory, DataFolder);
        if (TryReadRunning(dataDirectory) is not { } running)
        {
            return false;
        }

        var binaries = FindBinaries();
        var runAs = Environment.IsPrivilegedProcess ? ServiceUser : null;
        var modeName = mode == PostgresStopMode.Fast ? "fast" : "immediate";
        var result = await RunAsync(
            binaries.PgCtl,
            ["-D", dataDirectory, "-m", modeName, "-w", "-t", StartTimeoutSeconds.ToString(CultureInfo.InvariantCulture), "stop"],
            runAs,
            cancellationToken,
            allowFailure: true).ConfigureAwait(false);
        if (result.ExitCode != 0 && IsAlive(running.ProcessId))
        {
            // pg_ctl could not stop it: the postmaster is ours by PID, so end it the hard way.
            KillProcess(running.ProcessId);
        }

        return true;
    }

    /// <summary>Stops this server.</summary>
    public Task StopAsync(PostgresStopMode mode, CancellationToken cancellationToken) =>
        StopAsync(Directory, mode, cancellationToken);

    /// <summary>A connection string for <paramref name="database"/> as the superuser.</summary>
    public string ConnectionString(string database)
    {
        ValidateDatabaseName(database);
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = IPAddress.Loopback.ToString(),
            Port = Port,
            Username = SuperUser,
            Password = _password,
            Database = database,
            Timeout = 15,
            CommandTimeout = 30,
        };
        return builder.ConnectionString;
    }

    /// <summary>Creates <paramref name="database"/> unless it exists; returns its connection string.</summary>
    public async Task<string> EnsureDatabaseAsync(string database, CancellationToken cancellationToken)
    {
        ValidateDatabaseName(database);
        // Unpooled: a pooled connection may belong to an earlier run of this server and be dead already.
        var admin = new NpgsqlConnectionStringBuilder(ConnectionString("postgres")) { Pooling = false };
        await using var connection = new NpgsqlConnection(admin.ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name;", connection))
        {
            exists.Parameters.AddWithValue("name", database);
            if (await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is not null)
            {
                return ConnectionString(database);
            }
        }

        try
        {
            // The name was validated to [a-z0-9_], so quoting it as an identifier is safe.
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database}\";", connection);
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.DuplicateDatabase || e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            // Another process created it between the check and the CREATE.
        }

        return ConnectionString(database);
    }

    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it is taken by then).</summary>
    public static int FindFreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task InitializeAsync(Binaries binaries, string directory, string dataDirectory, string? runAs, CancellationToken cancellationToken)
    {
        var password = Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();
        var passwordPath = Path.Combine(directory, PasswordFile);
        File.WriteAllText(passwordPath, password);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(passwordPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        if (runAs is not null)
        {
            await RunAsync("chown", [$"{runAs}:{runAs}", passwordPath], null, cancellationToken).ConfigureAwait(false);
        }

        // Only TCP on loopback with a password: no Unix socket (its default directory may not be
        // writable by the service user), nothing reachable from other machines.
        await RunAsync(
            binaries.InitDb,
            ["-D", dataDirectory, "-U", SuperUser, $"--pwfile={passwordPath}", "--auth=scram-sha-256",
             "-E", "UTF8", "--locale=C"],
            runAs,
            cancellationToken).ConfigureAwait(false);

        var configPath = Path.Combine(dataDirectory, "postgresql.conf");
        File.AppendAllText(configPath,
            "\n# Converge private server\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n");
    }

    private static void PrepareDirectory(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    private static string ReadPassword(string directory)
    {
        var path = Path.Combine(directory, PasswordFile);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"{path} is missing: the PostgreSQL directory {directory} was not made by Converge.");
        }

        return File.ReadAllText(path).Trim();
    }

    private static void ValidateDatabaseName(string database)
    {
        if (string.IsNullOrEmpty(database) || database.Length > 63 || !database.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_'))
        {
            throw new ArgumentException($"Database name '{database}' must be 1..63 characters of a-z, 0-9 and _.", nameof(database));
        }
    }

    private static string ReadLogTail(string logPath)
    {
        const int TailBytes = 4096;
        try
        {
            var text = File.ReadAllText(logPath);
            return text.Length <= TailBytes ? text : text[^TailBytes..];
        }
        catch (IOException e)
        {
            return $"(log unreadable: {e.Message})";
        }
    }
}
