using Converge.Grains.Controller;
using Converge.Storage;
using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>How the two mirrors of a new segment are picked from the nodes' statuses (no cluster needed).</summary>
public sealed class MirrorScoresTests
{
    private static StorageNodeStatus Status(string node, int openSegments = 0, long nvramUsedBytes = 0) =>
        new(node, ChunkCount: 1, nvramUsedBytes, openSegments, 0, 0, 0, 0, 0);

    [Fact]
    public void TheTwoLeastLoaded_AreChosen_LeastLoadedFirst()
    {
        string[] nodes = ["s1", "s2", "s3", "s4"];
        StorageNodeStatus?[] statuses = [Status("s1", openSegments: 3), Status("s2", openSegments: 1), Status("s3", openSegments: 2), Status("s4", openSegments: 0)];

        for (var i = 0; i < 50; i++)
        {
            Assert.Equal(("s4", "s2"), MirrorScores.Choose(nodes, statuses));
        }
    }

    [Fact]
    public void UndestagedNvram_CountsAgainstANode()
    {
        string[] nodes = ["s1", "s2", "s3"];
        StorageNodeStatus?[] statuses = [Status("s1", nvramUsedBytes: 512L << 20), Status("s2"), Status("s3", openSegments: 1)];

        for (var i = 0; i < 50; i++)
        {
            Assert.Equal(("s2", "s3"), MirrorScores.Choose(nodes, statuses));
        }
    }

    [Fact]
    public void ANodeThatDidNotAnswer_IsChosenOnlyWhenTwoOthersAreNotAvailable()
    {
        string[] nodes = ["s1", "s2", "s3"];
        StorageNodeStatus?[] oneSilent = [null, Status("s2", openSegments: 5), Status("s3", openSegments: 9)];
        StorageNodeStatus?[] twoSilent = [null, Status("s2", openSegments: 5), null];

        for (var i = 0; i < 50; i++)
        {
            Assert.Equal(("s2", "s3"), MirrorScores.Choose(nodes, oneSilent));
            var (first, second) = MirrorScores.Choose(nodes, twoSilent);
            Assert.Equal("s2", first);
            Assert.Contains(second, new[] { "s1", "s3" });
        }
    }

    /// <summary>
    /// Silent nodes come in order of the open segments known of them (the choices made for them just before), so a
    /// burst of choices while two nodes are silent spreads over both instead of falling at random.
    /// </summary>
    [Fact]
    public void SilentNodes_ComeInOrderOfTheirKnownOpenSegments()
    {
        string[] nodes = ["s1", "s2", "s3"];
        StorageNodeStatus?[] statuses = [null, Status("s2"), null];
        var known = new Dictionary<string, int> { ["s1"] = 2, ["s2"] = 0, ["s3"] = 1 };

        for (var i = 0; i < 50; i++)
        {
            Assert.Equal(("s2", "s3"), MirrorScores.Choose(nodes, statuses, (n, status) => known[nodes[n]]));
        }

        var chosen = new Dictionary<string, int> { ["s1"] = 0, ["s3"] = 0 };
        for (var i = 0; i < 6; i++)
        {
            var (_, second) = MirrorScores.Choose(nodes, statuses, (n, status) => status?.OpenSegments ?? chosen.GetValueOrDefault(nodes[n]));
            chosen[second]++;
        }

        Assert.Equal(3, chosen["s1"]);
        Assert.Equal(3, chosen["s3"]);
    }
}
