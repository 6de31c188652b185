using System.Net;
using Converge.Grains.Placement;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.Runtime.MembershipService.SiloMetadata;
using Xunit;

namespace Converge.Tests.Cluster;

/// <summary>The control-plane filter picks the embedded primary even before any silo metadata has arrived.</summary>
public sealed class ControlPlanePlacementTests
{
    private static readonly SiloAddress Primary = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11111), 1);
    private static readonly SiloAddress Storage2 = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11112), 1);
    private static readonly SiloAddress Compute1 = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11121), 1);

    [Fact]
    public void WithNoMetadataKnownYet_ThePrimaryIsFoundByItsConfiguredEndpoint()
    {
        var filter = Director(new IPEndPoint(IPAddress.Loopback, 11111));
        Assert.Equal([Primary], filter.Filter(new ControlPlanePlacementFilterStrategy(), default, [Storage2, Compute1, Primary]));
    }

    [Fact]
    public void WhenThePrimaryIsNotAmongTheCandidates_EveryCandidateIsKept()
    {
        var filter = Director(new IPEndPoint(IPAddress.Loopback, 11111));
        Assert.Equal([Storage2, Compute1], filter.Filter(new ControlPlanePlacementFilterStrategy(), default, [Storage2, Compute1]));
    }

    [Fact]
    public void WithoutAConfiguredPrimaryOrAFlaggedOne_AnySiloWillDo()
    {
        Assert.Equal([Primary, Storage2], Director(null).Filter(new ControlPlanePlacementFilterStrategy(), default, [Primary, Storage2]));
    }

    private static ControlPlanePlacementFilterDirector Director(IPEndPoint? primary) =>
        new(new NoMetadataYet(), Options.Create(new DevelopmentClusterMembershipOptions { PrimarySiloEndpoint = primary }));

    /// <summary>A metadata cache that has heard from no silo yet.</summary>
    private sealed class NoMetadataYet : ISiloMetadataCache
    {
        public SiloMetadata GetSiloMetadata(SiloAddress siloAddress) => SiloMetadata.Empty;
    }
}
