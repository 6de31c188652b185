using Converge.Client.Cli;
using Xunit;

namespace Converge.Tests.Cluster;

/// <summary>Bad arguments are refused with exit code 2 and a clear message before anything is contacted.</summary>
public sealed class CliUsageTests
{
    [Theory]
    [InlineData("invalid volume name", "volume", "create", "Bad Name!", "--size", "1G")]
    [InlineData("at least 1 MiB", "volume", "create", "v1", "--size", "0")]
    [InlineData("at least 1 MiB", "volume", "create", "v1", "--size", "1000")]
    [InlineData("not a size", "volume", "create", "v1", "--size", "ten")]
    [InlineData("power of two", "volume", "create", "v1", "--size", "1G", "--block-size", "3000")]
    [InlineData("--size", "volume", "create", "v1")]
    [InlineData("bogus", "bogus")]
    [InlineData("--storage must be at least 2", "up", "--storage", "1")]
    [InlineData("must be from 0 to 32", "up", "--compute", "99")]
    [InlineData("not a compute node", "volume", "attach", "v1", "--node", "storage-1")]
    [InlineData("--storage must be at least 2", "bench", "--storage", "1")]
    [InlineData("--compute must be at least 1", "bench", "--compute", "0")]
    [InlineData("--runtime must be from 1 to 120", "bench", "--runtime", "0")]
    [InlineData("--runtime must be from 1 to 120", "bench", "--quick", "--runtime", "9999")]
    [InlineData("ten", "bench", "--runtime", "ten")]
    [InlineData("--log-bandwidth-mb must be from 0", "bench", "--log-bandwidth-mb", "-5")]
    [InlineData("leave out --compute and --storage", "bench", "--scaling", "--storage", "3")]
    [InlineData("--repeat must be from 1 to 9", "bench", "--repeat", "0")]
    [InlineData("--repeat must be from 1 to 9", "bench", "--quick", "--repeat", "12")]
    [InlineData("--repeat applies to the comparison run", "bench", "--scaling", "--repeat", "3")]
    [InlineData("--fast", "bench", "--fast")]
    [InlineData("disk", "bench", "--nvram-mode", "disk")]
    [InlineData("partition", "partition")]
    [InlineData("heal", "heal")]
    [InlineData("--fault-interval", "drill", "--no-partitions", "--fault-interval", "0s")]
    public async Task BadArguments_ExitWithUsageError(string expectedMessage, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var data = Path.Combine(Path.GetTempPath(), "converge-cli-" + Guid.NewGuid().ToString("N"));

        var exit = await ConvergeCli.RunAsync([.. args, "--data", data], output, error);

        Assert.Equal(ConvergeCli.ExitUsage, exit);
        Assert.Contains(expectedMessage, error.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "a refused command must not create anything");
    }

    [Fact]
    public async Task VolumeCommand_WithoutCluster_FailsWithExitOne()
    {
        var error = new StringWriter();
        var data = Path.Combine(Path.GetTempPath(), "converge-cli-" + Guid.NewGuid().ToString("N"));

        var exit = await ConvergeCli.RunAsync(["volume", "ls", "--data", data], new StringWriter(), error);

        Assert.Equal(ConvergeCli.ExitFailure, exit);
        Assert.Contains("no cluster", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Partition_OfALoopbackCluster_IsRefused()
    {
        var data = Path.Combine(Path.GetTempPath(), "converge-cli-" + Guid.NewGuid().ToString("N"));
        var layout = new Converge.Client.Local.ClusterLayout { DataDirectory = data };
        layout.Nodes.Add(layout.NewNode(Converge.Cluster.NodeRoles.Storage, 1));
        layout.Save();
        try
        {
            var error = new StringWriter();
            var exit = await ConvergeCli.RunAsync(["partition", "storage-1", "--data", data], new StringWriter(), error);

            Assert.Equal(ConvergeCli.ExitFailure, exit);
            Assert.Contains("network namespace per silo", error.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task Up_WhenAnotherProcessHoldsItsPorts_FailsNamingThem_AndStartsNothing()
    {
        var offset = Converge.Client.Local.ClusterLayout.FindFreePortOffset(2000, 40, 2, 3)
            ?? throw new InvalidOperationException("no free port block for the test");
        var probe = new Converge.Client.Local.ClusterLayout { PortOffset = offset };
        var storage1 = probe.NewNode(Converge.Cluster.NodeRoles.Storage, 1);
        var compute1 = probe.NewNode(Converge.Cluster.NodeRoles.Compute, 1);
        var silo = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, storage1.SiloPort);
        var nbd = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, compute1.NbdPort);
        silo.Start();
        nbd.Start();
        var data = Path.Combine(Path.GetTempPath(), "converge-cli-" + Guid.NewGuid().ToString("N"));
        try
        {
            var error = new StringWriter();
            var exit = await ConvergeCli.RunAsync(
                ["up", "--port-offset", offset.ToString(System.Globalization.CultureInfo.InvariantCulture), "--data", data], new StringWriter(), error);

            Assert.Equal(ConvergeCli.ExitFailure, exit);
            var message = error.ToString();
            Assert.Contains($"{storage1.SiloPort} (storage-1's silo port)", message, StringComparison.Ordinal);
            Assert.Contains($"{compute1.NbdPort} (compute-1's NBD port)", message, StringComparison.Ordinal);
            Assert.Contains("in use by another process", message, StringComparison.Ordinal);
            Assert.False(File.Exists(Converge.Client.Local.ClusterLayout.FilePath(data)), "a refused start must not record a cluster");
            Assert.False(Directory.Exists(Path.Combine(data, "logs")), "a refused start must not start a silo");
        }
        finally
        {
            silo.Stop();
            nbd.Stop();
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }
}
