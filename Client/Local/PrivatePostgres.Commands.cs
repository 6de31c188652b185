using System.Diagnostics;
using System.Globalization;

namespace Converge.Hosting.Metadata;

public sealed partial class PrivatePostgres
{
    private const int CommandTimeoutSeconds = 120;
    private const int MaxOutputChars = 16 * 1024;

    private static readonly string[] BinaryDirectories = ["/usr/local/bin", "/usr/lib/postgresql"];

    private readonly record struct Binaries(string InitDb, string PgCtl);

    private readonly record struct Running(int ProcessId, int Port);

    private readonly record struct CommandResult(int ExitCode, string Output);

    /// <summary>initdb and pg_ctl from PATH, /usr/local/bin, or the newest /usr/lib/postgresql/N/bin.</summary>
    private static Binaries FindBinaries()
    {
        var candidates = new List<string>();
        foreach (var entry in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            candidates.Add(entry);
        }

        candidates.Add(BinaryDirectories[0]);
        if (System.IO.Directory.Exists(BinaryDirectories[1]))
        {
            // Newest major version first: /usr/lib/postgresql/17/bin before 15/bin.
            var versions = System.IO.Directory.GetDirectories(BinaryDirectories[1])
                .Select(d => (Dir: d, Ok: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v), Version: v))
                .Where(x => x.Ok)
                .OrderByDescending(x => x.Version);
            candidates.AddRange(versions.Select(x => Path.Combine(x.Dir, "bin")));
        }

        foreach (var dir in candidates)
        {
            var initDb = Path.Combine(dir, "initdb");
            var pgCtl = Path.Combine(dir, "pg_ctl");
            if (File.Exists(initDb) && File.Exists(pgCtl))
            {
                return new Binaries(initDb, pgCtl);
            }
        }

        throw new FileNotFoundException(
            "PostgreSQL server binaries (initdb, pg_ctl) were found neither on PATH nor in /usr/lib/postgresql/*/bin; install the Debian package 'postgresql'.");
    }

    /// <summary>Creates the unprivileged system user the server runs as, unless it exists.</summary>
    private static async Task<string> EnsureServiceUserAsync(CancellationToken cancellationToken)
    {
        if ((await RunAsync("id", ["-u", ServiceUser], null, cancellationToken, allowFailure: true).ConfigureAwait(false)).ExitCode == 0)
        {
            return ServiceUser;
        }

        var created = await RunAsync(
            "useradd", ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", ServiceUser],
            null, cancellationToken, allowFailure: true).ConfigureAwait(false);

        // Exit 9 is "user exists": another process created it in between, which is as good.
        if (created.ExitCode != 0 && created.ExitCode != 9)
        {
            throw new InvalidOperationException($"Could not create system user {ServiceUser} for PostgreSQL (useradd exit {created.ExitCode}): {created.Output}");
        }

        return ServiceUser;
    }

    /// <summary>The server running on <paramref name="dataDirectory"/>, from its postmaster.pid, if that process is a live postgres.</summary>
    private static Running? TryReadRunning(string dataDirectory)
    {
        var pidPath = Path.Combine(dataDirectory, "postmaster.pid");
        string[] lines;
        try
        {
            lines = File.ReadAllLines(pidPath);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }

        // Line 1 is the PID, line 4 the port (PostgreSQL's documented lock-file layout).
        if (lines.Length < 4
            || !int.TryParse(lines[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            || !int.TryParse(lines[3], NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            return null;
        }

        return IsAlive(pid) ? new Running(pid, port) : null;
    }

    /// <summary>Whether <paramref name="pid"/> is a live postgres process (not a reused PID).</summary>
    private static bool IsAlive(int pid)
    {
        try
        {
            var comm = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/comm").Trim();
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");

            // A zombie (state Z, after ") ") has exited and only waits to be reaped.
            var state = stat[(stat.LastIndexOf(')') + 2)..];
            return comm is "postgres" or "postmaster" && !state.StartsWith('Z');
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void KillProcess(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill(entireProcessTree: false);
        }
        catch (ArgumentException)
        {
            // Already gone.
        }
    }

    /// <summary>
    /// Runs a command (as <paramref name="runAs"/> through runuser when given), bounded by
    /// <see cref="CommandTimeoutSeconds"/>, and returns its exit code and combined output.
    /// </summary>
    private static async Task<CommandResult> RunAsync(
        string fileName, IReadOnlyList<string> arguments, string? runAs, CancellationToken cancellationToken, bool allowFailure = false)
    {
        var startInfo = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (runAs is null)
        {
            startInfo.FileName = fileName;
        }
        else
        {
            startInfo.FileName = "runuser";
            startInfo.ArgumentList.Add("-u");
            startInfo.ArgumentList.Add(runAs);
            startInfo.ArgumentList.Add("--");
            startInfo.ArgumentList.Add(fileName);
        }

        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        // PostgreSQL tools read these; a caller's values must not redirect them elsewhere.
        startInfo.Environment.Remove("PGDATA");
        startInfo.Environment.Remove("PGPORT");
        startInfo.Environment.Remove("PGHOST");
        startInfo.Environment["LC_ALL"] = "C";

        using var process = Process.Start(startInfo)
            ?? throw new InvalidOperationException($"Could not start {fileName}.");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(CommandTimeoutSeconds));
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw new TimeoutException($"{fileName} {string.Join(' ', arguments)} did not finish within {CommandTimeoutSeconds} s.");
        }

        var output = Truncate((await stdout.ConfigureAwait(false)) + (await stderr.ConfigureAwait(false)));
        if (process.ExitCode != 0 && !allowFailure)
        {
            throw new InvalidOperationException($"{fileName} {string.Join(' ', arguments)} failed with exit {process.ExitCode}: {output}");
        }

        return new CommandResult(process.ExitCode, output);
    }

    private static string Truncate(string text) => text.Length <= MaxOutputChars ? text : text[..MaxOutputChars] + "...";
}
