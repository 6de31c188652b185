using System.Security.Cryptography;
using Xunit;

namespace Converge.Tests.Nbd;

/// <summary>Real NBD clients against the in-process server: nbdinfo, qemu-io, qemu-img, nbdcopy and fio.</summary>
public sealed class NbdToolTests : IDisposable
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(3);
    private readonly string _directory = Directory.CreateTempSubdirectory("nbd-tools-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Nbdinfo_ReportsSizeAndBlockSizes()
    {
        await using var server = await NbdTestServer.StartAsync();
        var output = await ToolRunner.RunOkAsync("nbdinfo", [server.Uri("vol")], ToolTimeout);
        Assert.Contains($"export-size: {NbdTestServer.VolumeSizeBytes}", output, StringComparison.Ordinal);
        Assert.Contains("block_size_minimum: 1", output, StringComparison.Ordinal);
        Assert.Contains("block_size_preferred: 4096", output, StringComparison.Ordinal);
        Assert.Contains("block_size_maximum: 33554432", output, StringComparison.Ordinal);
        Assert.Contains("can_multi_conn: true", output, StringComparison.Ordinal);
        Assert.Contains("can_fast_zero: true", output, StringComparison.Ordinal);
        Assert.Contains("base:allocation", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NbdinfoList_ListsEveryExport()
    {
        await using var server = await NbdTestServer.StartAsync();
        server.Backend.AddVolume("second", 1 << 20, "another");
        var output = await ToolRunner.RunOkAsync("nbdinfo", ["--list", $"nbd://127.0.0.1:{server.Port}"], ToolTimeout);
        Assert.Contains("export=\"vol\"", output, StringComparison.Ordinal);
        Assert.Contains("export=\"second\"", output, StringComparison.Ordinal);
        Assert.Contains("description: another", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QemuIo_UnalignedPatternWrites_ReadBack_AndZeroesAndDiscardsReadAsZeros()
    {
        await using var server = await NbdTestServer.StartAsync();
        string[] commands =
        [
            "write -P 0xab 1000 5000",
            "write -P 0xcd 70001 333",
            "read -P 0xab 1000 5000",
            "read -P 0xcd 70001 333",
            "read -P 0 0 1000",
            "write -z 2000 1000",
            "read -P 0 2000 1000",
            "read -P 0xab 3000 3000",
            "discard 0 16384",
            "read -P 0 0 16384",
            "read -P 0xcd 70001 333",
        ];
        var arguments = new List<string> { "-f", "raw" };
        foreach (var command in commands)
        {
            arguments.Add("-c");
            arguments.Add(command);
        }

        arguments.Add(server.Uri("vol"));
        var output = await ToolRunner.RunOkAsync("qemu-io", arguments, ToolTimeout);
        Assert.DoesNotContain("fail", output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("error", output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("read 16384/16384 bytes", output, StringComparison.Ordinal);

        var volume = server.Backend.Volume("vol");
        Assert.Equal(new byte[16384], volume.Read(0, 16384));
        Assert.All(volume.Read(70001, 333), b => Assert.Equal(0xcd, b));
        Assert.Equal(0, volume.Read(70000, 1)[0]);
        Assert.Equal(0, volume.Read(70334, 1)[0]);
    }

    [Fact]
    public async Task Nbdcopy_RoundTripsA32MiBRandomFile()
    {
        await using var server = await NbdTestServer.StartAsync();
        server.Backend.AddVolume("copy", 32L * 1024 * 1024);
        var source = Path.Combine(_directory, "source.bin");
        var back = Path.Combine(_directory, "back.bin");
        WriteRandomFile(source, 32 * 1024 * 1024);
        await ToolRunner.RunOkAsync("nbdcopy", [source, server.Uri("copy")], ToolTimeout);
        await ToolRunner.RunOkAsync("nbdcopy", [server.Uri("copy"), back], ToolTimeout);
        Assert.Equal(Sha256(source), Sha256(back));
    }

    [Fact]
    public async Task QemuImgConvert_ThenCompare_FindsIdenticalImages()
    {
        await using var server = await NbdTestServer.StartAsync();
        server.Backend.AddVolume("img", 16L * 1024 * 1024);
        var source = Path.Combine(_directory, "source.img");
        WriteRandomFile(source, 16 * 1024 * 1024, holeEvery: 3);
        await ToolRunner.RunOkAsync("qemu-img", ["convert", "-n", "-f", "raw", "-O", "raw", source, server.Uri("img")], ToolTimeout);
        var output = await ToolRunner.RunOkAsync("qemu-img", ["compare", "-f", "raw", "-F", "raw", source, server.Uri("img")], ToolTimeout);
        Assert.Contains("Images are identical", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Fio_RandomWritesAtDepth32_VerifyWithCrc32c()
    {
        await using var server = await NbdTestServer.StartAsync();
        var output = await ToolRunner.RunOkAsync("fio", FioArguments(server.Uri("vol"), "solo", offsetBytes: 0, sizeBytes: 16 << 20), ToolTimeout);
        AssertFioVerified(output);
    }

    [Fact]
    public async Task TwoFioJobsAtOnce_OnTwoConnections_BothVerify()
    {
        await using var server = await NbdTestServer.StartAsync();
        var first = ToolRunner.RunOkAsync("fio", FioArguments(server.Uri("vol"), "first", offsetBytes: 0, sizeBytes: 16 << 20), ToolTimeout);
        var second = ToolRunner.RunOkAsync("fio", FioArguments(server.Uri("vol"), "second", offsetBytes: 32 << 20, sizeBytes: 16 << 20), ToolTimeout);
        var outputs = await Task.WhenAll(first, second);
        AssertFioVerified(outputs[0]);
        AssertFioVerified(outputs[1]);
    }

    private static string[] FioArguments(string uri, string name, long offsetBytes, long sizeBytes) =>
    [
        $"--name={name}", "--ioengine=nbd", $"--uri={uri}", "--rw=randwrite", "--bs=4k", "--iodepth=32",
        $"--offset={offsetBytes}", $"--size={sizeBytes}", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
        "--randrepeat=0", "--output-format=normal",
    ];

    private static void AssertFioVerified(string output)
    {
        Assert.DoesNotContain("verify: bad", output, StringComparison.Ordinal);
        Assert.Contains("err= 0", output, StringComparison.Ordinal);
        Assert.Contains("WRITE:", output, StringComparison.Ordinal);
        Assert.Contains("READ:", output, StringComparison.Ordinal); // the verify pass read everything back
    }

    private static void WriteRandomFile(string path, int sizeBytes, int holeEvery = 0)
    {
        var bytes = new byte[sizeBytes];
        Random.Shared.NextBytes(bytes);
        if (holeEvery > 0)
        {
            for (var block = 0; block < sizeBytes / 65536; block += holeEvery)
            {
                bytes.AsSpan(block * 65536, 65536).Clear();
            }
        }

        File.WriteAllBytes(path, bytes);
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }
}
