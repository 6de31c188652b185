using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Converge.Cluster;

namespace Converge.Client.Local;

/// <summary>One silo process of a local cluster, as recorded in <c>cluster.json</c>.</summary>
public sealed class NodeRecord
{
    public required string Name { get; init; }

    public required string Role { get; init; }

    public required int Index { get; init; }

    public required int SiloPort { get; init; }

    public required int GatewayPort { get; init; }

    public required int HttpPort { get; init; }

    /// <summary>
    /// The IPv4 address the silo listens on: 127.0.0.1, or with <see cref="ClusterLayout.Network"/> <c>netns</c> its own
    /// address in its network namespace.
    /// </summary>
    public string Address { get; init; } = "127.0.0.1";

    /// <summary>NBD port on compute nodes, 0 on storage nodes.</summary>
    public int NbdPort { get; init; }

    /// <summary>Process id of the running silo, 0 when stopped.</summary>
    public int Pid { get; set; }
}

/// <summary>
/// The local cluster's description, kept in <c>DATA/cluster.json</c>: mode, ports and process ids of every node.
/// Ports follow a fixed scheme shifted by <see cref="PortOffset"/>, so a second cluster (tests) can run beside one.
/// Every port of every offset in use stays below 32768, the start of Linux's ephemeral range: a port in that range,
/// free while its silo is down, can be taken as the local end of any outgoing connection, and the silo then fails to
/// restart with "address already in use". The bases differ by amounts that are not multiples of 300 (the spacing of
/// offsets), so two clusters at different offsets never share a port.
/// </summary>
public sealed class ClusterLayout
{
    public const int FirstNbdPort = 10809;

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    public string Mode { get; set; } = "sqlite";

    public int PortOffset { get; set; }

    /// <summary>
    /// <c>loopback</c> (default: every silo on 127.0.0.1) or <c>netns</c>: every silo in a network namespace of its own,
    /// joined by a bridge, so one can be cut off from the rest (<see cref="NetworkNamespaces"/>). Needs root.
    /// </summary>
    public string Network { get; set; } = "loopback";

    public bool UsesNamespaces => Network == "netns";

    public string ClusterId { get; set; } = "converge";

    public string NvramMode { get; set; } = "fsync";

    /// <summary>PostgreSQL port in postgres mode (a private server under DATA/postgres).</summary>
    public int PostgresPort { get; set; }

    public List<NodeRecord> Nodes { get; set; } = [];

    [JsonIgnore]
    public string DataDirectory { get; set; } = "";

    public static string FilePath(string dataDirectory) => Path.Combine(dataDirectory, "cluster.json");

    public static ClusterLayout? Load(string dataDirectory)
    {
        var path = FilePath(dataDirectory);
        if (!File.Exists(path))
        {
            return null;
        }

        var layout = JsonSerializer.Deserialize<ClusterLayout>(File.ReadAllText(path), JsonOptions)
            ?? throw new InvalidDataException($"{path} is empty");
        layout.DataDirectory = dataDirectory;
        return layout;
    }

    public void Save()
    {
        Directory.CreateDirectory(DataDirectory);
        var path = FilePath(DataDirectory);
        // A temp name of its own per save: a drill kills and restarts nodes from concurrent tasks, each saving.
        var temp = $"{path}.{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(this, JsonOptions));
        File.Move(temp, path, overwrite: true);
    }

    public NodeRecord? Find(string name) => Nodes.Find(n => n.Name == name);

    public IEnumerable<NodeRecord> OfRole(string role) => Nodes.Where(n => n.Role == role).OrderBy(n => n.Index);

    /// <summary>The node whose silo hosts the embedded membership table: the first storage node.</summary>
    public NodeRecord Primary => OfRole(NodeRoles.Storage).First();

    public NodeRecord NewNode(string role, int index) => role == NodeRoles.Storage
        ? new NodeRecord
        {
            Name = $"storage-{index}",
            Role = role,
            Index = index,
            Address = UsesNamespaces ? NetworkNamespaces.NodeAddress(this, role, index) : "127.0.0.1",
            SiloPort = PortOffset + 11110 + index,
            GatewayPort = PortOffset + 12140 + index,
            HttpPort = PortOffset + 9110 + index,
        }
        : new NodeRecord
        {
            Name = $"compute-{index}",
            Role = role,
            Index = index,
            Address = UsesNamespaces ? NetworkNamespaces.NodeAddress(this, role, index) : "127.0.0.1",
            SiloPort = PortOffset + 11210 + index,
            GatewayPort = PortOffset + 12240 + index,
            HttpPort = PortOffset + 9210 + index,
            NbdPort = PortOffset + FirstNbdPort + index - 1,
        };

    /// <summary>
    /// True when every loopback port a cluster of this size would use at <paramref name="portOffset"/> is free now
    /// (silo, gateway, metrics, NBD and PostgreSQL ports), so a private cluster (tests, bench) can start beside others.
    /// </summary>
    public static bool PortsAreFree(int portOffset, int compute, int storage)
    {
        var probe = new ClusterLayout { PortOffset = portOffset };
        var nodes = Enumerable.Range(1, storage).Select(i => probe.NewNode(NodeRoles.Storage, i))
            .Concat(Enumerable.Range(1, compute).Select(i => probe.NewNode(NodeRoles.Compute, i)));
        return PortsInUse(nodes).Count == 0 && IsFree(portOffset + 15432);
    }

    /// <summary>
    /// The first of <paramref name="candidates"/> port blocks, starting <paramref name="basePort"/> and spaced 300 apart,
    /// at which <see cref="PortsAreFree"/> holds; the start rotates with the process id so concurrent runs spread out.
    /// Null when every candidate block is taken.
    /// </summary>
    public static int? FindFreePortOffset(int basePort, int candidates, int compute, int storage)
    {
        for (var attempt = 0; attempt < candidates; attempt++)
        {
            var offset = basePort + ((Environment.ProcessId + attempt) % candidates * 300);
            if (PortsAreFree(offset, compute, storage))
            {
                return offset;
            }
        }

        return null;
    }

    /// <summary>
    /// The loopback ports of <paramref name="nodes"/> that another process listens on now, each as "port (node's what)".
    /// A silo whose port is taken exits at start, and meanwhile the start would find the other process (say a cluster at the
    /// same port offset) answering on its ports and take it for the new silo.
    /// </summary>
    public static IReadOnlyList<string> PortsInUse(IEnumerable<NodeRecord> nodes) =>
        nodes.SelectMany(n => new[] { (n.SiloPort, "silo"), (n.GatewayPort, "gateway"), (n.HttpPort, "metrics"), (n.NbdPort, "NBD") }
                .Where(p => p.Item1 != 0 && !IsFree(p.Item1))
                .Select(p => $"{p.Item1} ({n.Name}'s {p.Item2} port)"))
            .ToList();

    private static bool IsFree(int port)
    {
        try
        {
            var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    public IReadOnlyList<IPEndPoint> Gateways(Func<NodeRecord, bool>? where = null) =>
        Nodes.Where(n => where?.Invoke(n) ?? true).Select(n => new IPEndPoint(IPAddress.Parse(n.Address), n.GatewayPort)).ToArray();

    /// <summary>Connection string of the private PostgreSQL database (postgres mode), set when the server starts.</summary>
    public string PostgresConnectionString { get; set; } = "";
}
