using System.Security.Cryptography;
using Converge.Tests.Nbd;
using Xunit;

namespace Converge.Tests.NbdCluster;

/// <summary>
/// Real NBD clients (nbdinfo, qemu-img, nbdcopy, qemu-io, fio) against a compute silo's NBD port: every byte goes
/// through the volume controller grain and is committed on two storage silos before the write is answered.
/// </summary>
[Collection(NbdClusterCollection.Name)]
public sealed class NbdClusterToolTests(NbdClusterFixture fixture) : IDisposable
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromMinutes(2);
    private readonly string _directory = Directory.CreateTempSubdirectory("nbd-cluster-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Nbdinfo_ShowsVolumeSizeAndBlockSizes_AndListShowsEveryVolume()
    {
        var volume = await fixture.CreateVolumeAsync("info");
        await fixture.CreateVolumeAsync("info-second", 2 * NbdClusterFixture.SmallVolumeBytes);
        var output = await ToolRunner.RunOkAsync("nbdinfo", [fixture.Uri(1, volume)], ToolTimeout);
        Assert.Contains($"export-size: {NbdClusterFixture.SmallVolumeBytes}", output, StringComparison.Ordinal);
        Assert.Contains("block_size_minimum: 1", output, StringComparison.Ordinal);
        Assert.Contains($"block_size_preferred: {NbdClusterFixture.VolumeBlockBytes}", output, StringComparison.Ordinal);
        Assert.Contains("block_size_maximum: 33554432", output, StringComparison.Ordinal);
        Assert.Contains("can_multi_conn: true", output, StringComparison.Ordinal);

        // Listing describes every volume (NBD_OPT_INFO) without attaching it, so no epoch moves.
        var epoch = await fixture.EpochAsync(volume);
        var list = await ToolRunner.RunOkAsync("nbdinfo", ["--list", $"nbd://127.0.0.1:{fixture.NbdPort(1)}"], ToolTimeout);
        Assert.Equal(epoch, await fixture.EpochAsync(volume));
        Assert.Equal(0UL, await fixture.EpochAsync("info-second"));
        Assert.Contains("export=\"info\"", list, StringComparison.Ordinal);
        Assert.Contains("export=\"info-second\"", list, StringComparison.Ordinal);
        Assert.Contains($"export-size: {2 * NbdClusterFixture.SmallVolumeBytes}", list, StringComparison.Ordinal);
    }

    [Fact]
    public async Task QemuImgConvert_Of256MiBRandomImage_CompareFindsIdentical_AndNbdcopyRoundTripKeepsSha256()
    {
        var volume = await fixture.CreateVolumeAsync("image", NbdClusterFixture.ImageVolumeBytes);
        var source = Path.Combine(_directory, "source.img");
        var back = Path.Combine(_directory, "back.img");
        WriteRandomFile(source, (int)NbdClusterFixture.ImageVolumeBytes);

        await ToolRunner.RunOkAsync("qemu-img", ["convert", "-n", "-f", "raw", "-O", "raw", source, fixture.Uri(1, volume)], ToolTimeout);
        var compared = await ToolRunner.RunOkAsync("qemu-img", ["compare", "-f", "raw", "-F", "raw", source, fixture.Uri(1, volume)], ToolTimeout);
        Assert.Contains("Images are identical", compared, StringComparison.Ordinal);

        // nbdcopy writes a fresh volume through several connections at once, then reads it back.
        var copy = await fixture.CreateVolumeAsync("image-copy", NbdClusterFixture.ImageVolumeBytes);
        await ToolRunner.RunOkAsync("nbdcopy", [source, fixture.Uri(1, copy)], ToolTimeout);
        await ToolRunner.RunOkAsync("nbdcopy", [fixture.Uri(1, copy), back], ToolTimeout);
        if (Sha256(source) != Sha256(back))
        {
            // Tell a wrong read from wrong stored data: read the volume again through the other compute node (a new
            // attachment there starts with an empty cache, so every block comes from the log mirrors or the extents).
            var again = Path.Combine(_directory, "again.img");
            await ToolRunner.RunOkAsync("nbdcopy", [fixture.Uri(2, copy), again], ToolTimeout);
            Assert.Fail($"first read-back: {DescribeDifference(source, back)}; read again through compute-2: {DescribeDifference(source, again)}");
        }
    }

    [Fact]
    public async Task QemuIo_UnalignedPatternWrites_ReadBack_AndZeroesAndDiscardsReadAsZeros()
    {
        var volume = await fixture.CreateVolumeAsync("qemu-io");
        string[] commands =
        [
            "write -P 0xab 1000 5000",
            "write -P 0xcd 70001 333",
            "write -P 0x5a 1048000 2097000",
            "read -P 0xab 1000 5000",
            "read -P 0xcd 70001 333",
            "read -P 0x5a 1048000 2097000",
            "read -P 0 0 1000",
            "read -P 0 70334 1000",
            "write -z 2000 1000",
            "read -P 0 2000 1000",
            "read -P 0xab 1000 1000",
            "read -P 0xab 3000 3000",
            "discard 0 16384",
            "read -P 0 0 16384",
            "read -P 0xcd 70001 333",
            "write -z 1049000 1048576",
            "read -P 0x5a 1048000 1000",
            "read -P 0 1049000 1048576",
            "read -P 0x5a 2097576 1047424",
        ];
        var output = await RunQemuIoAsync(fixture.Uri(1, volume), commands);
        Assert.DoesNotContain("fail", output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("error", output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("read 16384/16384 bytes", output, StringComparison.Ordinal);
        Assert.Contains("read 2097000/2097000 bytes", output, StringComparison.Ordinal);

        // A new connection (a new attach) sees the same bytes, so they came from the mirrors' log, not a connection's state.
        var again = await RunQemuIoAsync(fixture.Uri(1, volume), ["read -P 0 0 16384", "read -P 0xcd 70001 333", "read -P 0 1049000 1048576"]);
        Assert.DoesNotContain("fail", again, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Fio_RandomWritesAtDepth32_VerifyWithCrc32c()
    {
        var volume = await fixture.CreateVolumeAsync("fio-solo");
        var output = await ToolRunner.RunOkAsync("fio", FioArguments(fixture.Uri(1, volume), "solo", offsetBytes: 0, sizeBytes: 16 << 20), ToolTimeout);
        AssertFioVerified(output);
    }

    [Fact]
    public async Task TwoFioJobsOnTwoConnectionsToOneVolume_BothVerify()
    {
        var volume = await fixture.CreateVolumeAsync("fio-pair");
        var first = ToolRunner.RunOkAsync("fio", FioArguments(fixture.Uri(1, volume), "first", offsetBytes: 0, sizeBytes: 16 << 20), ToolTimeout);
        var second = ToolRunner.RunOkAsync("fio", FioArguments(fixture.Uri(1, volume), "second", offsetBytes: 32 << 20, sizeBytes: 16 << 20), ToolTimeout);
        var outputs = await Task.WhenAll(first, second);
        AssertFioVerified(outputs[0]);
        AssertFioVerified(outputs[1]);
    }

    [Fact]
    public async Task ReadPastTheEnd_GetsEinval_WritePastTheEnd_GetsEnospc_AndTheLastBlockStillWorks()
    {
        var volume = await fixture.CreateVolumeAsync("edges");
        var size = NbdClusterFixture.SmallVolumeBytes;
        // qemu-io checks ranges against the size it was told, so the raw client sends the requests the server must refuse.
        await using var client = await RawNbdClient.ConnectAsync(fixture.NbdPort(1));
        Assert.Equal(size, await client.GoAsync(volume, structured: false));
        await client.SendRequestAsync(0, 0, 1, (ulong)size - 512, 1024);
        Assert.Equal(22u, (await client.ReadSimpleReplyAsync(1)).Error);
        await client.SendRequestAsync(1, 0, 2, (ulong)size - 512, 1024, new byte[1024]);
        Assert.Equal(28u, (await client.ReadSimpleReplyAsync(2)).Error);
        await client.SendRequestAsync(1, 0, 3, (ulong)size - 512, 512, Enumerable.Repeat((byte)7, 512).ToArray());
        Assert.Equal(0u, (await client.ReadSimpleReplyAsync(3)).Error);
        await client.SendRequestAsync(0, 0, 4, (ulong)size - 1024, 1024);
        var tail = await client.ReadSimpleReplyAsync(4, 1024);
        Assert.Equal(0u, tail.Error);
        Assert.Equal(new byte[512], tail.Data[..512]);
        Assert.All(tail.Data[512..], b => Assert.Equal(7, b));
    }

    private static async Task<string> RunQemuIoAsync(string uri, IEnumerable<string> commands)
    {
        var arguments = new List<string> { "-f", "raw" };
        foreach (var command in commands)
        {
            arguments.Add("-c");
            arguments.Add(command);
        }

        arguments.Add(uri);
        return await ToolRunner.RunOkAsync("qemu-io", arguments, ToolTimeout);
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

    private static void WriteRandomFile(string path, int sizeBytes)
    {
        using var file = File.Create(path);
        var chunk = new byte[1 << 20];
        for (var written = 0; written < sizeBytes; written += chunk.Length)
        {
            Random.Shared.NextBytes(chunk);
            file.Write(chunk, 0, Math.Min(chunk.Length, sizeBytes - written));
        }
    }

    /// <summary>
    /// Which 4 KiB blocks of <paramref name="copy"/> differ from <paramref name="original"/>, and what they hold instead
    /// (zeros, another block of the original, or unknown bytes), so a failure says where to look.
    /// </summary>
    private static string DescribeDifference(string original, string copy)
    {
        const int block = 4096;
        var a = File.ReadAllBytes(original);
        var b = File.ReadAllBytes(copy);
        var byContent = new Dictionary<string, long>();
        for (var i = 0; i + block <= a.Length; i += block)
        {
            byContent.TryAdd(Convert.ToHexString(SHA256.HashData(a.AsSpan(i, block))), i / block);
        }

        var differing = new List<string>();
        var count = 0;
        for (var i = 0; i < Math.Min(a.Length, b.Length); i += block)
        {
            var length = Math.Min(block, Math.Min(a.Length, b.Length) - i);
            if (a.AsSpan(i, length).SequenceEqual(b.AsSpan(i, length)))
            {
                continue;
            }

            count++;
            if (differing.Count < 12)
            {
                var got = b.AsSpan(i, length);
                var what = !got.ContainsAnyExcept((byte)0) ? "zeros"
                    : length == block && byContent.TryGetValue(Convert.ToHexString(SHA256.HashData(got)), out var other) ? $"block {other}"
                    : "other bytes";
                differing.Add($"{i / block}: {what}");
            }
        }

        if (count == 0 && a.Length == b.Length)
        {
            return "identical";
        }

        return $"copy of {b.Length} bytes (original {a.Length}) differs in {count} blocks of 4 KiB; first: {string.Join(", ", differing)}";
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }
}
