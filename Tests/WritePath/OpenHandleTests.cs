using Converge.Cluster;
using Converge.DataPath;
using Converge.Grains.Controller;
using Converge.Volumes;
using Xunit;

namespace Converge.Tests.WritePath;

/// <summary>
/// Opens name their client handle, so that a retried open or close is counted once and a volume is detached exactly
/// when the last client that opened it has closed: first the bookkeeping alone, then on a real compute silo.
/// </summary>
[Collection(WritePathCollection.Name)]
public sealed class OpenHandleTests(WritePathCluster cluster)
{
    [Fact]
    public void RepeatedOpensAndCloses_OfOneHandle_CountOnce()
    {
        var handles = new OpenHandles();
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();

        Assert.True(handles.TryOpen(a));
        Assert.True(handles.TryOpen(a));
        Assert.True(handles.TryOpen(b));
        Assert.Equal(2, handles.Count);

        Assert.True(handles.Close(a));
        Assert.False(handles.Close(a));
        Assert.Equal(1, handles.Count);
        Assert.False(handles.TryOpen(a));
        Assert.True(handles.Close(b));
        Assert.Equal(0, handles.Count);
        Assert.Throws<ArgumentException>(() => handles.TryOpen(Guid.Empty));
    }

    [Fact]
    public void ACloseThatOvertookItsOpen_MakesTheOpenRefused_AndReleasesNothing()
    {
        var handles = new OpenHandles();
        var held = Guid.NewGuid();
        var late = Guid.NewGuid();
        handles.TryOpen(held);

        Assert.False(handles.Close(late));
        Assert.False(handles.TryOpen(late));
        Assert.True(handles.IsHeld(held));
        Assert.Equal(1, handles.Count);
    }

    [Fact]
    public void TheImplicitHold_IsReleasedByTheFirstUnknownClose_AndReplacedByAdoptedHandles()
    {
        var handles = new OpenHandles();
        handles.OpenImplicitly();
        Assert.Equal(1, handles.Count);
        Assert.True(handles.Close(Guid.NewGuid()));
        Assert.Equal(0, handles.Count);

        var adopted = Guid.NewGuid();
        handles.OpenImplicitly();
        handles.Adopt([adopted]);
        Assert.Equal(1, handles.Count);
        Assert.True(handles.IsHeld(adopted));

        var successor = new OpenHandles();
        successor.Adopt([]);
        Assert.Equal(1, successor.Count);
    }

    [Fact]
    public void ClosedIds_AreRememberedUpToTheBound()
    {
        var handles = new OpenHandles();
        var first = Guid.NewGuid();
        handles.Close(first);
        for (var i = 1; i < OpenHandles.RememberedClosed; i++)
        {
            handles.Close(Guid.NewGuid());
        }

        Assert.True(handles.WasClosed(first));
        handles.Close(Guid.NewGuid());
        Assert.False(handles.WasClosed(first));
        Assert.True(handles.TryOpen(first));
    }

    [Fact]
    public async Task AnOpenSentTwice_IsReleasedByOneClose_AndTheVolumeDetaches()
    {
        await cluster.CreateVolumeAsync("twice", 16L << 20);
        var controller = cluster.Grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey("compute-1", "twice"));
        var handle = Guid.NewGuid();

        var first = await controller.OpenAsync(handle);
        var again = await controller.OpenAsync(handle);

        Assert.Equal(VolumeError.None, first.Error);
        Assert.Equal(VolumeError.None, again.Error);
        Assert.Equal(first.Epoch, again.Epoch);
        Assert.Equal("compute-1", (await cluster.Grains.GetGrain<IVolumeGrain>("twice").GetAsync()).Volume!.AttachedNode);

        await controller.CloseAsync(handle);

        Assert.Null((await cluster.Grains.GetGrain<IVolumeGrain>("twice").GetAsync()).Volume!.AttachedNode);
        var reopened = await controller.OpenAsync(handle);
        Assert.Equal(VolumeError.InvalidHandle, reopened.Error);
        Assert.Null((await cluster.Grains.GetGrain<IVolumeGrain>("twice").GetAsync()).Volume!.AttachedNode);
        Assert.Equal(VolumeError.InvalidHandle, (await controller.OpenAsync(Guid.Empty)).Error);
    }

    [Fact]
    public async Task TwoHandles_KeepTheVolumeAttached_UntilBothClose()
    {
        await cluster.CreateVolumeAsync("shared-open", 16L << 20);
        var controller = cluster.Grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey("compute-1", "shared-open"));
        var volume = cluster.Grains.GetGrain<IVolumeGrain>("shared-open");
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();
        Assert.Equal(VolumeError.None, (await controller.OpenAsync(a)).Error);
        Assert.Equal(VolumeError.None, (await controller.OpenAsync(b)).Error);

        await controller.CloseAsync(a);
        await controller.CloseAsync(a);

        Assert.Equal("compute-1", (await volume.GetAsync()).Volume!.AttachedNode);
        await controller.CloseAsync(b);
        Assert.Null((await volume.GetAsync()).Volume!.AttachedNode);
    }

    /// <summary>
    /// A silo's death deactivates the controller (its directory entry was there) and the departing activation asks a
    /// new one to resume for its clients' handles. When the client's close reaches the new activation first, the resume
    /// must not attach: nobody would be left to close, the lease would be renewed for good and no other node could take
    /// the volume over. Here the catalogue holds the departing activation's attachment (made through the volume grain,
    /// so no controller activation knows it), the close arrives, then the resume.
    /// </summary>
    [Fact]
    public async Task AResumeForHandlesClosedMeanwhile_DetachesInsteadOfHoldingTheVolumeForNobody()
    {
        var (volume, controller, epoch) = await AttachedWithoutAControllerAsync("resume-closed");
        var handle = Guid.NewGuid();

        await controller.CloseAsync(handle);
        Assert.True(await controller.ResumeAsync(epoch, [handle]));

        var after = (await volume.GetAsync()).Volume!;
        Assert.Null(after.AttachedNode);
        Assert.Equal(epoch, after.Epoch);

        // A write of that client still in flight must not attach the volume again, implicitly, for nobody.
        Assert.Equal(IoStatus.NotAttached, await controller.WriteAcknowledgedAsync(0, new byte[4096]));
        Assert.Null((await volume.GetAsync()).Volume!.AttachedNode);
        var elsewhere = await volume.AttachAsync("compute-2", force: false);
        Assert.True(elsewhere.Ok, elsewhere.Message);
    }

    /// <summary>The resume of a handle still open attaches again on the same node, under a new epoch.</summary>
    [Fact]
    public async Task AResumeForAHandleStillOpen_AttachesAgain_AndItsCloseDetaches()
    {
        var (volume, controller, epoch) = await AttachedWithoutAControllerAsync("resume-open");
        var handle = Guid.NewGuid();

        Assert.True(await controller.ResumeAsync(epoch, [handle]));

        var resumed = (await volume.GetAsync()).Volume!;
        Assert.Equal("compute-1", resumed.AttachedNode);
        Assert.True(resumed.Epoch > epoch);
        await controller.CloseAsync(handle);
        Assert.Null((await volume.GetAsync()).Volume!.AttachedNode);
    }

    /// <summary>
    /// A new volume attached to compute-1 in the catalogue only (through the volume grain), as a departing controller
    /// activation leaves it; and compute-1's controller for it, which has not seen that attach.
    /// </summary>
    private async Task<(IVolumeGrain Volume, IVolumeControllerGrain Controller, ulong Epoch)> AttachedWithoutAControllerAsync(string name)
    {
        await cluster.CreateVolumeAsync(name, 16L << 20);
        var volume = cluster.Grains.GetGrain<IVolumeGrain>(name);
        var held = await volume.AttachAsync("compute-1", force: false);
        Assert.True(held.Ok, held.Message);
        return (volume, cluster.Grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey("compute-1", name)), held.Attachment!.Epoch);
    }
}
