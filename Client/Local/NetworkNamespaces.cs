using System.Diagnostics;
using System.Globalization;
using Converge.Cluster;

namespace Converge.Client.Local;

/// <summary>
/// The network of a local cluster whose silos each run in a network namespace of their own (layout network
/// <c>netns</c>), so that one silo can be cut off from all others as a real partition: its packets are dropped, its
/// connections hang, nothing tells it that the others are gone. Needs root and iproute2.
/// <para>
/// Layout, for subnet S (derived from the port offset, so clusters at different offsets never share one): a bridge
/// <c>cvbS</c> in the caller's namespace holding 10.231.S.1/24 (the address clients such as the drill reach the silos
/// from); per node a namespace <c>convergeS-NODE</c> with loopback up and an <c>eth0</c> holding 10.231.S.(10+i) for
/// storage-i or 10.231.S.(100+i) for compute-i, the other end of its veth pair (<c>cvhS{s|c}i</c>) a port of the bridge.
/// Cutting a node sets that bridge port down: the node keeps its address and route, its traffic just goes nowhere.
/// </para>
/// </summary>
public static class NetworkNamespaces
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The third octet of the cluster's addresses: 1-250, from the port offset.</summary>
    public static int Subnet(ClusterLayout layout) => (layout.PortOffset / 100 % 250) + 1;

    public static string NodeAddress(ClusterLayout layout, string role, int index) =>
        string.Create(CultureInfo.InvariantCulture, $"10.231.{Subnet(layout)}.{(role == NodeRoles.Storage ? 10 : 100) + index}");

    public static string BridgeAddress(ClusterLayout layout) => string.Create(CultureInfo.InvariantCulture, $"10.231.{Subnet(layout)}.1");

    public static string Namespace(ClusterLayout layout, NodeRecord node) =>
        string.Create(CultureInfo.InvariantCulture, $"converge{Subnet(layout)}-{node.Name}");

    /// <summary>The program and arguments that run a command inside <paramref name="node"/>'s namespace.</summary>
    public static IReadOnlyList<string> Enter(ClusterLayout layout, NodeRecord node) => ["ip", "netns", "exec", Namespace(layout, node)];

    private static string Bridge(ClusterLayout layout) => string.Create(CultureInfo.InvariantCulture, $"cvb{Subnet(layout)}");

    private static string HostEnd(ClusterLayout layout, NodeRecord node) =>
        string.Create(CultureInfo.InvariantCulture, $"cvh{Subnet(layout)}{(node.Role == NodeRoles.Storage ? 's' : 'c')}{node.Index}");

    /// <summary>
    /// Creates what is missing: the bridge and, for every node of the layout, its namespace and veth pair (idempotent, so
    /// <c>up</c> after a partial failure or with new nodes completes the network).
    /// </summary>
    public static void Ensure(ClusterLayout layout)
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            throw new ClusterCommandException("a cluster with a network namespace per silo needs Linux and root (ip netns)");
        }

        var bridge = Bridge(layout);
        if (!LinkExists(bridge))
        {
            Run("link", "add", bridge, "type", "bridge");
            Run("addr", "add", BridgeAddress(layout) + "/24", "dev", bridge);
            Run("link", "set", bridge, "up");
        }

        var existing = Run("netns", "list").Split('\n').Select(l => l.Split(' ')[0]).ToHashSet();
        foreach (var node in layout.Nodes)
        {
            var space = Namespace(layout, node);
            var host = HostEnd(layout, node);
            if (existing.Contains(space) && LinkExists(host))
            {
                continue;
            }

            if (existing.Contains(space))
            {
                Run("netns", "delete", space);
            }

            if (LinkExists(host))
            {
                Run("link", "delete", host);
            }

            var peer = "cvp" + host[3..];
            Run("netns", "add", space);
            Run("link", "add", host, "type", "veth", "peer", "name", peer);
            Run("link", "set", peer, "netns", space);
            Run("-n", space, "link", "set", peer, "name", "eth0");
            Run("-n", space, "addr", "add", node.Address + "/24", "dev", "eth0");
            Run("-n", space, "link", "set", "eth0", "up");
            Run("-n", space, "link", "set", "lo", "up");
            Run("link", "set", host, "master", bridge);
            Run("link", "set", host, "up");
        }
    }

    /// <summary>Removes every namespace of the layout and the bridge; what is already gone is skipped.</summary>
    public static void Remove(ClusterLayout layout)
    {
        var existing = TryRun("netns", "list")?.Split('\n').Select(l => l.Split(' ')[0]).ToHashSet() ?? [];
        foreach (var node in layout.Nodes)
        {
            var space = Namespace(layout, node);
            if (existing.Contains(space))
            {
                TryRun("netns", "delete", space);
            }

            if (LinkExists(HostEnd(layout, node)))
            {
                TryRun("link", "delete", HostEnd(layout, node));
            }
        }

        if (LinkExists(Bridge(layout)))
        {
            TryRun("link", "delete", Bridge(layout));
        }
    }

    /// <summary>Cuts <paramref name="node"/> off from every other silo and client, or (<paramref name="cut"/> false) joins it again.</summary>
    public static void SetCut(ClusterLayout layout, NodeRecord node, bool cut) =>
        Run("link", "set", HostEnd(layout, node), cut ? "down" : "up");

    private static bool LinkExists(string name) => TryRun("link", "show", "dev", name) is not null;

    private static string Run(params string[] arguments) =>
        TryRun(out var error, arguments) ?? throw new ClusterCommandException($"ip {string.Join(' ', arguments)} failed: {error}");

    private static string? TryRun(params string[] arguments) => TryRun(out _, arguments);

    private static string? TryRun(out string error, params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new ClusterCommandException("could not run ip (iproute2)");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(CommandTimeout))
        {
            process.Kill();
            error = $"did not finish within {CommandTimeout.TotalSeconds:0} s";
            return null;
        }

        error = errors.Result.Trim();
        return process.ExitCode == 0 ? output.Result : null;
    }
}
