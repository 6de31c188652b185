using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;

namespace Converge.Hosting;

/// <summary>
/// How one silo process is configured: command-line options (<c>--node storage-1</c>) or environment variables
/// (<c>CONVERGE_NODE=storage-1</c>). Parsed once at start; a bad value stops the process with a clear message.
/// </summary>
public sealed class SiloSettings
{
    public required string Role { get; init; }

    /// <summary>Stable node name, e.g. <c>storage-1</c>; names the data directory and pins grains.</summary>
    public required string Node { get; init; }

    public required string DataDirectory { get; init; }

    /// <summary>
    /// The IPv4 address this silo listens on and advertises (<c>--address</c>, default 127.0.0.1): silo, gateway, NBD and
    /// metrics ports. A silo in a network namespace of its own (partition drills) has a routable one there.
    /// </summary>
    public IPAddress Address { get; init; } = IPAddress.Loopback;

    /// <summary>Address of the primary silo (<c>--primary-address</c>, default <see cref="Address"/>); ignored with PostgreSQL.</summary>
    public IPAddress PrimaryAddress { get; init; } = IPAddress.Loopback;

    public required int SiloPort { get; init; }

    public required int GatewayPort { get; init; }

    /// <summary>Silo port of the primary silo (embedded localhost clustering); ignored with PostgreSQL.</summary>
    public required int PrimarySiloPort { get; init; }

    public required string ClusterId { get; init; }

    /// <summary><c>sqlite</c> (embedded) or <c>postgres</c>.</summary>
    public required string MetadataMode { get; init; }

    /// <summary>SQLite file path, or the PostgreSQL connection string.</summary>
    public required string MetadataConnection { get; init; }

    /// <summary>NBD listen port on compute silos (0 = none).</summary>
    public int NbdPort { get; init; }

    /// <summary>
    /// Data-channel port of a storage silo (<c>--data-port</c>, default 0 = any free port): compute nodes send appends
    /// there, and find it in the silo's metadata, so no fixed port is needed.
    /// </summary>
    public int DataPort { get; init; }

    /// <summary>Metrics and stats HTTP port (0 = none).</summary>
    public int HttpPort { get; init; }

    /// <summary><c>fsync</c> (default) or <c>memory</c> (log in /dev/shm, acknowledged without fdatasync).</summary>
    public string NvramMode { get; init; } = "fsync";

    /// <summary>RAM cache of a compute silo, in MiB (<c>--cache-ram-mb</c>, default 256).</summary>
    public int CacheRamMb { get; init; } = 256;

    /// <summary>Flash cache file of a compute silo, in MiB (<c>--cache-flash-mb</c>, default 1024; 0 = no flash tier).</summary>
    public int CacheFlashMb { get; init; } = 1024;

    /// <summary>
    /// A storage node seen active and then not active for this long is removed for good and its data re-replicated
    /// (<c>--auto-remove-after</c>, seconds; default 900; 0 = only the operator's <c>node remove</c>). Read by the control
    /// plane's storage roster.
    /// </summary>
    public TimeSpan AutoRemoveAfter { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Caps a storage silo's log writes at this many MB/s (<c>--log-bandwidth-mb</c>, default 0 = no cap): for benchmarks
    /// that show a storage-bound cluster scaling on one machine.
    /// </summary>
    public int LogBandwidthMb { get; init; }

    public bool UsesPostgres => MetadataMode == "postgres";

    public static SiloSettings Parse(IConfiguration config, string role)
    {
        string Get(string key, string? fallback = null) =>
            config[key] ?? fallback ?? throw new SettingsException($"missing required option --{key}");

        int GetPort(string key, int fallback)
        {
            var text = config[key];
            if (text is null)
            {
                return fallback;
            }

            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 0 or > 65535)
            {
                throw new SettingsException($"--{key} must be a port number from 0 to 65535, not '{text}'");
            }

            return port;
        }

        // A whole number within [min, max] of the named unit ("MiB", "seconds"); a bad value names the option.
        int GetWhole(string key, string unit, int fallback, int min, int max)
        {
            var text = config[key];
            if (text is null)
            {
                return fallback;
            }

            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
            {
                throw new SettingsException($"--{key} must be a whole number of {unit} from {min} to {max}, not '{text}'");
            }

            return value;
        }

        IPAddress GetAddress(string key, IPAddress fallback)
        {
            var text = config[key];
            if (text is null)
            {
                return fallback;
            }

            if (!IPAddress.TryParse(text, out var address) || address.AddressFamily != AddressFamily.InterNetwork || text.Count(c => c == '.') != 3)
            {
                throw new SettingsException($"--{key} must be an IPv4 address such as 127.0.0.1, not '{text}'");
            }

            return address;
        }

        var node = Get("node");
        if (!node.StartsWith(role + "-", StringComparison.Ordinal) || node.Contains('/', StringComparison.Ordinal))
        {
            throw new SettingsException($"--node '{node}' must be named {role}-N for a {role} silo");
        }

        var mode = Get("metadata", "sqlite");
        if (mode is not ("sqlite" or "postgres"))
        {
            throw new SettingsException($"--metadata must be 'sqlite' or 'postgres', not '{mode}'");
        }

        var nvram = Get("nvram-mode", "fsync");
        if (nvram is not ("fsync" or "memory"))
        {
            throw new SettingsException($"--nvram-mode must be 'fsync' or 'memory', not '{nvram}'");
        }

        var dataRoot = Path.GetFullPath(Get("data", Path.Combine(Environment.CurrentDirectory, ".converge")));
        var siloPort = GetPort("silo-port", 11111);
        var address = GetAddress("address", IPAddress.Loopback);
        return new SiloSettings
        {
            Address = address,
            PrimaryAddress = GetAddress("primary-address", address),
            Role = role,
            Node = node,
            DataDirectory = Path.Combine(dataRoot, "nodes", node),
            SiloPort = siloPort,
            GatewayPort = GetPort("gateway-port", 30000),
            PrimarySiloPort = GetPort("primary-port", siloPort),
            ClusterId = Get("cluster-id", "converge"),
            MetadataMode = mode,
            MetadataConnection = Get("metadata-connection", mode == "sqlite" ? Path.Combine(dataRoot, "metadata.db") : null),
            NbdPort = GetPort("nbd-port", 0),
            HttpPort = GetPort("http-port", 0),
            DataPort = GetPort("data-port", 0),
            NvramMode = nvram,
            CacheRamMb = GetWhole("cache-ram-mb", "MiB", 256, 1, 1024 * 1024),
            CacheFlashMb = GetWhole("cache-flash-mb", "MiB", 1024, 0, 16 * 1024 * 1024),
            AutoRemoveAfter = TimeSpan.FromSeconds(GetWhole("auto-remove-after", "seconds", 900, 0, 7 * 24 * 3600)),
            LogBandwidthMb = GetWhole("log-bandwidth-mb", "MB/s", 0, 0, 100_000),
        };
    }
}

/// <summary>A configuration error: printed without a stack trace, exit code 2.</summary>
public sealed class SettingsException(string message) : Exception(message);
