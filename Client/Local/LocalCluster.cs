using System.Diagnostics;
using System.Net.Sockets;
using Converge.Cluster;
using Orleans.Runtime;

namespace Converge.Client.Local;

/// <summary>What <c>converge up</c> was asked for.</summary>
/// <remarks><paramref name="Namespaces"/>: every silo in a network namespace of its own (root only), so the drill and tests can
/// partition one; an existing cluster keeps the network it was created with.</remarks>
public sealed record UpOptions(int Compute = 2, int Storage = 3, bool Postgres = false, int PortOffset = 0, string NvramMode = "fsync", bool Namespaces = false);

/// <summary>One node's state as <c>converge status</c> shows it.</summary>
public sealed record NodeStatus(NodeRecord Node, bool ProcessRunning, string Membership);

/// <summary>
/// A cluster of separate silo processes on this machine, described by <c>DATA/cluster.json</c>. This is the one
/// code path behind <c>./converge up/down/kill/start/scale/status</c> and the integration tests.
/// </summary>
public sealed partial class LocalCluster(string repositoryRoot, string dataDirectory, TextWriter progress)
{
    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(90);

    /// <summary>How long a start waits for its silos' ports to come free before refusing.</summary>
    private static readonly TimeSpan PortGrace = TimeSpan.FromSeconds(10);

    public string DataDirectory { get; } = Path.GetFullPath(dataDirectory);

    /// <summary>Options added to every silo's command line (benchmarks size the caches with them).</summary>
    public IReadOnlyList<string> ExtraSiloArguments { get; init; } = [];

    public ClusterLayout? Layout { get; private set; } = ClusterLayout.Load(Path.GetFullPath(dataDirectory));

    public string LogPath(string node) => Path.Combine(DataDirectory, "logs", node + ".log");

    /// <summary>Starts every node that is not running (creating the layout on first use) and waits until all have joined.</summary>
    public async Task<ClusterLayout> UpAsync(UpOptions options, CancellationToken cancellationToken)
    {
        var layout = Layout;
        if (layout is null)
        {
            layout = new ClusterLayout
            {
                DataDirectory = DataDirectory,
                Mode = options.Postgres ? "postgres" : "sqlite",
                PortOffset = options.PortOffset,
                NvramMode = options.NvramMode,
                PostgresPort = options.PortOffset + 15432,
                Network = options.Namespaces ? "netns" : "loopback",
            };
        }
        else if (options.Namespaces && !layout.UsesNamespaces)
        {
            throw new ClusterCommandException(
                $"the cluster in {DataDirectory} runs every silo on 127.0.0.1; run 'converge down' and use a different --data directory for one with a network namespace per silo");
        }
        else if (layout.Mode != (options.Postgres ? "postgres" : "sqlite"))
        {
            throw new ClusterCommandException(
                $"the cluster in {DataDirectory} uses {layout.Mode} metadata; run 'converge down' and use a different --data directory to change mode");
        }

        for (var i = layout.OfRole(NodeRoles.Storage).Count() + 1; i <= options.Storage; i++)
        {
            layout.Nodes.Add(layout.NewNode(NodeRoles.Storage, i));
        }

        for (var i = layout.OfRole(NodeRoles.Compute).Count() + 1; i <= options.Compute; i++)
        {
            layout.Nodes.Add(layout.NewNode(NodeRoles.Compute, i));
        }

        // Before anything is written or started: nothing changes when the start cannot work.
        await RequirePortsFreeAsync(layout, layout.Nodes.Where(n => !SiloProcess.IsRunning(n.Pid, n.Name)).ToList(), cancellationToken);
        Layout = layout;
        layout.Save();
        if (layout.UsesNamespaces)
        {
            NetworkNamespaces.Ensure(layout);
        }

        if (layout.Mode == "postgres")
        {
            await StartPostgresAsync(layout, cancellationToken);
        }

        // The primary first: in embedded mode every other silo joins through it.
        var primary = layout.Primary;
        if (!SiloProcess.IsRunning(primary.Pid, primary.Name))
        {
            StartProcess(layout, primary);
            await WaitForPortAsync(primary, primary.SiloPort, cancellationToken);
        }

        foreach (var node in layout.Nodes.Where(n => n != primary && !SiloProcess.IsRunning(n.Pid, n.Name)))
        {
            StartProcess(layout, node);
        }

        layout.Save();
        await WaitForMembersAsync(layout, layout.Nodes.Select(n => n.Name).ToArray(), cancellationToken);
        return layout;
    }

    /// <summary>Stops every silo (compute first, the primary last) and the private PostgreSQL, if any.</summary>
    public async Task DownAsync()
    {
        var layout = RequireLayout();
        var order = layout.OfRole(NodeRoles.Compute)
            .Concat(layout.OfRole(NodeRoles.Storage).Where(n => n != layout.Primary))
            .ToList();
        await StopNodesAsync(layout, order);
        await StopNodesAsync(layout, [layout.Primary]);
        if (layout.Mode == "postgres")
        {
            await StopPostgresAsync(layout);
        }

        if (layout.UsesNamespaces)
        {
            NetworkNamespaces.Remove(layout);
        }

        layout.Save();
    }

    /// <summary>SIGKILL one node (fault drills). The record keeps the node so <c>start</c> can bring it back.</summary>
    public NodeRecord Kill(string nodeName)
    {
        var layout = RequireLayout();
        var node = RequireNode(layout, nodeName);
        if (!SiloProcess.IsRunning(node.Pid, node.Name))
        {
            throw new ClusterCommandException($"{node.Name} is not running");
        }

        SiloProcess.Kill(node.Pid);
        node.Pid = 0;
        layout.Save();
        return node;
    }

    /// <summary>
    /// SIGSTOP one node (fault drills): a hung process, not a dead one; peers may declare it dead meanwhile, and then it
    /// stops itself once resumed. Always pair with <see cref="Resume"/>.
    /// </summary>
    public NodeRecord Pause(string nodeName)
    {
        var layout = RequireLayout();
        var node = RequireNode(layout, nodeName);
        if (!SiloProcess.IsRunning(node.Pid, node.Name))
        {
            throw new ClusterCommandException($"{node.Name} is not running");
        }

        SiloProcess.Stop(node.Pid);
        return node;
    }

    /// <summary>SIGCONT one node paused by <see cref="Pause"/>; harmless when it is not paused or no longer running.</summary>
    public NodeRecord Resume(string nodeName)
    {
        var layout = RequireLayout();
        var node = RequireNode(layout, nodeName);
        if (SiloProcess.IsRunning(node.Pid, node.Name))
        {
            SiloProcess.Continue(node.Pid);
        }

        return node;
    }

    /// <summary>
    /// Cuts <paramref name="nodeName"/> off the network (a cluster with a namespace per silo only): its packets are
    /// dropped both ways while the process runs on. Peers declare it dead; once joined again with <see cref="Heal"/> it
    /// learns that and stops itself. Always pair with <see cref="Heal"/>.
    /// </summary>
    public NodeRecord Partition(string nodeName) => SetCut(nodeName, cut: true);

    /// <summary>Joins a node cut off by <see cref="Partition"/> to the network again; harmless when it is not cut off.</summary>
    public NodeRecord Heal(string nodeName) => SetCut(nodeName, cut: false);

    private NodeRecord SetCut(string nodeName, bool cut)
    {
        var layout = RequireLayout();
        var node = RequireNode(layout, nodeName);
        if (!layout.UsesNamespaces)
        {
            throw new ClusterCommandException($"the cluster in {DataDirectory} runs every silo on 127.0.0.1: partitions need one started with a network namespace per silo");
        }

        NetworkNamespaces.SetCut(layout, node, cut);
        return node;
    }

    /// <summary>
    /// Starts a stopped node and waits until it has joined. <paramref name="wrapper"/> runs the silo under another
    /// program (a fault injector such as <c>strace -f ... --</c>): the recorded pid is then the wrapper's, and
    /// <see cref="SiloProcess.Kill"/> takes its children down with it.
    /// </summary>
    public async Task<NodeRecord> StartNodeAsync(string nodeName, CancellationToken cancellationToken, IReadOnlyList<string>? wrapper = null)
    {
        var layout = RequireLayout();
        var node = RequireNode(layout, nodeName);
        if (SiloProcess.IsRunning(node.Pid, node.Name))
        {
            throw new ClusterCommandException($"{node.Name} is already running (pid {node.Pid})");
        }

        if (layout.Mode == "postgres")
        {
            await StartPostgresAsync(layout, cancellationToken);
        }

        if (layout.UsesNamespaces)
        {
            NetworkNamespaces.Ensure(layout);
        }

        await RequirePortsFreeAsync(layout, [node], cancellationToken);
        StartProcess(layout, node, wrapper);
        layout.Save();
        await WaitForMembersAsync(layout, [node.Name], cancellationToken);
        return node;
    }

    /// <summary>
    /// Refuses to start silos whose loopback ports another process listens on: such a silo exits at start, and until
    /// it has, the start would take the other process (a cluster at the same port offset, whose silos have the same
    /// names) for it. Clusters with a network namespace per silo have addresses of their own and are not checked. A silo
    /// of this cluster that just exited (fail-stop, or its wrapper gone first) may still be closing its sockets, so the
    /// ports get <see cref="PortGrace"/> to come free.
    /// </summary>
    private static async Task RequirePortsFreeAsync(ClusterLayout layout, IReadOnlyList<NodeRecord> starting, CancellationToken cancellationToken)
    {
        if (layout.UsesNamespaces)
        {
            return;
        }

        var clock = Stopwatch.StartNew();
        var taken = ClusterLayout.PortsInUse(starting);
        while (taken.Count > 0 && clock.Elapsed < PortGrace)
        {
            await Task.Delay(200, cancellationToken);
            taken = ClusterLayout.PortsInUse(starting);
        }

        if (taken.Count > 0)
        {
            throw new ClusterCommandException(
                $"port{(taken.Count > 1 ? "s" : "")} {string.Join(", ", taken.Take(4))}{(taken.Count > 4 ? $" and {taken.Count - 4} more" : "")} on 127.0.0.1 " +
                $"{(taken.Count > 1 ? "are" : "is")} in use by another process (another cluster at --port-offset {layout.PortOffset}?); " +
                "stop it, or put this cluster in another --data directory with a different --port-offset");
        }
    }

    /// <summary>Adds nodes up to the given counts, or gracefully stops compute nodes above them.</summary>
    public async Task ScaleAsync(int compute, int storage, CancellationToken cancellationToken)
    {
        var layout = RequireLayout();
        var storageCount = layout.OfRole(NodeRoles.Storage).Count();
        if (storage < storageCount)
        {
            throw new ClusterCommandException(
                $"removing storage nodes ({storageCount} -> {storage}) needs their data re-replicated first, which scale does not do; stop a node with 'converge kill' for drills instead");
        }

        var surplus = layout.OfRole(NodeRoles.Compute).Where(n => n.Index > compute).ToList();
        await StopNodesAsync(layout, surplus);
        layout.Nodes.RemoveAll(surplus.Contains);
        layout.Save();
        await UpAsync(new UpOptions(compute, storage, layout.Mode == "postgres", layout.PortOffset, layout.NvramMode, layout.UsesNamespaces), cancellationToken);
    }

    public async Task<IReadOnlyList<NodeStatus>> StatusAsync(CancellationToken cancellationToken)
    {
        var layout = RequireLayout();
        var membership = new Dictionary<string, string>();
        try
        {
            await using var client = await ConnectAsync(TimeSpan.FromSeconds(10), cancellationToken);
            var hosts = await client.Cluster.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: false);
            foreach (var host in hosts.OrderBy(h => h.StartTime))
            {
                membership[host.SiloName] = host.Status.ToString();
            }
        }
        catch (ClusterUnreachableException e)
        {
            progress.WriteLine($"converge: {e.Message}");
        }

        return layout.Nodes
            .Select(n => new NodeStatus(n, SiloProcess.IsRunning(n.Pid, n.Name), membership.GetValueOrDefault(n.Name, membership.Count == 0 ? "unreachable" : "absent")))
            .ToArray();
    }

    /// <summary>Connects a client through every node's gateway.</summary>
    public Task<ConvergeClient> ConnectAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var layout = RequireLayout();
        return ConvergeClient.ConnectAsync(layout.Gateways(), layout.ClusterId, timeout, cancellationToken);
    }

    private ClusterLayout RequireLayout() =>
        Layout ?? throw new ClusterCommandException($"no cluster in {DataDirectory}; start one with 'converge up'");

    private static NodeRecord RequireNode(ClusterLayout layout, string name) =>
        layout.Find(name) ?? throw new ClusterCommandException(
            $"no node named '{name}'; nodes are {string.Join(", ", layout.Nodes.Select(n => n.Name))}");

    private void StartProcess(ClusterLayout layout, NodeRecord node, IReadOnlyList<string>? wrapper = null)
    {
        var role = node.Role == NodeRoles.Storage ? "Storage" : "Compute";
        var dll = SiloBinaries.Find(repositoryRoot, role);
        var arguments = new List<string>
        {
            "--node", node.Name,
            "--data", DataDirectory,
            "--silo-port", node.SiloPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--gateway-port", node.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--primary-port", layout.Primary.SiloPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--address", node.Address,
            "--primary-address", layout.Primary.Address,
            "--http-port", node.HttpPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--cluster-id", layout.ClusterId,
            "--metadata", layout.Mode,
            "--nvram-mode", layout.NvramMode,
        };
        if (node.NbdPort != 0)
        {
            arguments.Add("--nbd-port");
            arguments.Add(node.NbdPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (layout.Mode == "postgres")
        {
            arguments.Add("--metadata-connection");
            arguments.Add(layout.PostgresConnectionString);
        }

        arguments.AddRange(ExtraSiloArguments);
        // In a namespace of its own, the silo runs under `ip netns exec`, which enters it and execs the rest in place.
        var prefix = layout.UsesNamespaces ? NetworkNamespaces.Enter(layout, node) : [];
        node.Pid = SiloProcess.Start(dll, arguments, LogPath(node.Name), [.. prefix, .. wrapper ?? []]);
        progress.WriteLine($"  started {node.Name} (pid {node.Pid})");
    }

    private async Task StopNodesAsync(ClusterLayout layout, IReadOnlyList<NodeRecord> nodes)
    {
        var running = nodes.Where(n => SiloProcess.IsRunning(n.Pid, n.Name)).ToList();
        foreach (var node in running)
        {
            SiloProcess.Terminate(node.Pid);
        }

        foreach (var node in running)
        {
            if (!await SiloProcess.WaitForExitAsync(node.Pid, node.Name, TimeSpan.FromSeconds(25)))
            {
                progress.WriteLine($"  {node.Name} did not stop within 25 s; killing it");
                SiloProcess.Kill(node.Pid);
                await SiloProcess.WaitForExitAsync(node.Pid, node.Name, TimeSpan.FromSeconds(5));
            }

            progress.WriteLine($"  stopped {node.Name}");
        }

        foreach (var node in nodes)
        {
            node.Pid = 0;
        }

        layout.Save();
    }

    private async Task WaitForPortAsync(NodeRecord node, int port, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < JoinTimeout)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!SiloProcess.IsRunning(node.Pid, node.Name))
            {
                throw Failure(node, "exited during start");
            }

            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(System.Net.IPAddress.Parse(node.Address), port, cancellationToken);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(200, cancellationToken);
            }
        }

        throw Failure(node, $"did not open port {port} within {JoinTimeout.TotalSeconds:0} s");
    }

    private async Task WaitForMembersAsync(ClusterLayout layout, IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.StartNew();
        var pending = new HashSet<string>(names);
        var lastReport = "";
        while (true)
        {
            foreach (var name in pending)
            {
                var node = layout.Find(name)!;
                if (!SiloProcess.IsRunning(node.Pid, node.Name))
                {
                    throw Failure(node, "exited during start");
                }
            }

            try
            {
                await using var client = await ConnectAsync(TimeSpan.FromSeconds(10), cancellationToken);
                while (deadline.Elapsed < JoinTimeout)
                {
                    var hosts = await client.Cluster.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: true);
                    pending.ExceptWith(hosts.Select(h => h.SiloName));
                    var report = $"  {names.Count - pending.Count}/{names.Count} nodes joined";
                    if (report != lastReport)
                    {
                        progress.WriteLine(report);
                        lastReport = report;
                    }

                    if (pending.Count == 0)
                    {
                        await client.Cluster.GetGrain<Converge.Volumes.IVolumeCatalogGrain>(0).ListAsync();
                        return;
                    }

                    foreach (var name in pending)
                    {
                        var node = layout.Find(name)!;
                        if (!SiloProcess.IsRunning(node.Pid, node.Name))
                        {
                            throw Failure(node, "exited during start");
                        }
                    }

                    await Task.Delay(250, cancellationToken);
                }
            }
            // A gateway listed in membership may refuse connections for a moment while its silo starts or is starved
            // of CPU, and calls may still be routed to a silo that just died: keep waiting within the join deadline
            // instead of failing the whole start.
            catch (Exception e) when (e is ClusterUnreachableException or OrleansException or TimeoutException && deadline.Elapsed < JoinTimeout)
            {
                await Task.Delay(500, cancellationToken);
                continue;
            }

            var slow = layout.Find(pending.FirstOrDefault() ?? names[0])!;
            throw Failure(slow, $"did not join within {JoinTimeout.TotalSeconds:0} s");
        }
    }

    private ClusterCommandException Failure(NodeRecord node, string what) =>
        new($"{node.Name} {what}; last lines of {LogPath(node.Name)}:\n{SiloProcess.Tail(LogPath(node.Name), 30)}");
}

/// <summary>A cluster command that could not be carried out; its message is for the operator (exit code 1).</summary>
public sealed class ClusterCommandException(string message) : Exception(message);
