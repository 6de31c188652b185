using System.Diagnostics;
using Converge.Client;
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
        handles.Adopt([new HandleHold(adopted, HandleExpiry.Never)]);
        Assert.Equal(1, handles.Count);
        Assert.True(handles.IsHeld(adopted));

        var successor = new OpenHandles();
        successor.Adopt([]);
        Assert.Equal(1, successor.Count);
    }

    [Fact]
    public void AnExpiringHandle_IsReleasedOnlyWhenNotRenewedWithinItsExpiry_AndAHandleWithoutOneNever()
    {
        var handles = new OpenHandles();
        var start = Stopwatch.GetTimestamp();
        long At(double seconds) => start + (long)(seconds * Stopwatch.Frequency);
        var expiring = Guid.NewGuid();
        var forever = Guid.NewGuid();
        var expiry = TimeSpan.FromSeconds(10);
        Assert.True(handles.TryOpen(expiring, expiry, start));
        Assert.True(handles.TryOpen(forever, HandleExpiry.Never, start));

        Assert.Empty(handles.Expire(At(9)));
        Assert.True(handles.Renew(expiring, expiry, At(9)));
        Assert.Empty(handles.Expire(At(18.5)));
        Assert.Equal([expiring], handles.Expire(At(19.5)));

        Assert.False(handles.IsHeld(expiring));
        Assert.True(handles.WasClosed(expiring));
        Assert.False(handles.Renew(expiring, expiry, At(20)));
        Assert.False(handles.TryOpen(expiring, expiry, At(20)));
        Assert.Empty(handles.Expire(At(1_000_000)));
        Assert.Equal(1, handles.Count);
        Assert.True(handles.IsHeld(forever));
    }

    [Fact]
    public void AdoptedHandles_KeepTheirExpiries_CountedFromTheHandOver()
    {
        var start = Stopwatch.GetTimestamp();
        long At(double seconds) => start + (long)(seconds * Stopwatch.Frequency);
        var departing = new OpenHandles();
        var expiring = Guid.NewGuid();
        var forever = Guid.NewGuid();
        departing.TryOpen(expiring, TimeSpan.FromSeconds(10), start);
        departing.TryOpen(forever, HandleExpiry.Never, start);

        var successor = new OpenHandles();
        successor.OpenImplicitly();
        successor.Adopt(departing.Snapshot(), At(50));

        Assert.Equal(2, successor.Count);
        Assert.Empty(successor.Expire(At(59)));
        Assert.Equal([expiring], successor.Expire(At(61)));
        Assert.Equal(1, successor.Count);
        Assert.True(successor.IsHeld(forever));
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(2, true)]
    [InlineData(30, true)]
    [InlineData(3600, true)]
    [InlineData(1, false)]
    [InlineData(-5, false)]
    [InlineData(3601, false)]
    public void HandleExpiries_AreZeroOrWithinTheirBounds(int seconds, bool allowed)
    {
        Assert.Equal(allowed, HandleExpiry.Check(TimeSpan.FromSeconds(seconds)) is null);
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

        var first = await controller.OpenAsync(handle, HandleExpiry.Never);
        var again = await controller.OpenAsync(handle, HandleExpiry.Never);

        Assert.Equal(VolumeError.None, first.Error);
        Assert.Equal(VolumeError.None, again.Error);
        Assert.Equal(first.Epoch, again.Epoch);
        Assert.Equal("compute-1", (await cluster.Grains.GetGrain<IVolumeGrain>("twice").GetAsync()).Volume!.AttachedNode);

        await controller.CloseAsync(handle);

        Assert.Null((await cluster.Grains.GetGrain<IVolumeGrain>("twice").GetAsync()).Volume!.AttachedNode);
        var reopened = await controller.OpenAsync(handle, HandleExpiry.Never);
        Assert.Equal(VolumeError.InvalidHandle, reopened.Error);
        Assert.Null((await cluster.Grains.GetGrain<IVolumeGrain>("twice").GetAsync()).Volume!.AttachedNode);
        Assert.Equal(VolumeError.InvalidHandle, (await controller.OpenAsync(Guid.Empty, HandleExpiry.Never)).Error);
    }

    [Fact]
    public async Task TwoHandles_KeepTheVolumeAttached_UntilBothClose()
    {
        await cluster.CreateVolumeAsync("shared-open", 16L << 20);
        var controller = cluster.Grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey("compute-1", "shared-open"));
        var volume = cluster.Grains.GetGrain<IVolumeGrain>("shared-open");
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();
        Assert.Equal(VolumeError.None, (await controller.OpenAsync(a, HandleExpiry.Never)).Error);
        Assert.Equal(VolumeError.None, (await controller.OpenAsync(b, HandleExpiry.Never)).Error);

        await controller.CloseAsync(a);
        await controller.CloseAsync(a);

        Assert.Equal("compute-1", (await volume.GetAsync()).Volume!.AttachedNode);
        await controller.CloseAsync(b);
        Assert.Null((await volume.GetAsync()).Volume!.AttachedNode);
    }

    /// <summary>
    /// A handle opened with an expiry holds the volume while it is renewed, and once its renewals stop (its client died)
    /// it is released as if closed: the volume detaches and another node may attach it without forcing. An expiry out of
    /// range is refused and attaches nothing.
    /// </summary>
    [Fact]
    public async Task AHandleNoLongerRenewed_Expires_AndTheVolumeDetaches()
    {
        await cluster.CreateVolumeAsync("expiring", 16L << 20);
        var controller = cluster.Grains.GetGrain<IVolumeControllerGrain>(NodeRoles.PinnedKey("compute-1", "expiring"));
        var volume = cluster.Grains.GetGrain<IVolumeGrain>("expiring");
        var expiry = HandleExpiry.Min;

        var refused = await controller.OpenAsync(Guid.NewGuid(), TimeSpan.FromMilliseconds(500));
        Assert.Equal(VolumeError.InvalidHandle, refused.Error);
        Assert.Contains("expiry", refused.Message, StringComparison.Ordinal);
        Assert.Null((await volume.GetAsync()).Volume!.AttachedNode);
        await Assert.ThrowsAsync<ArgumentException>(() => controller.KeepHandleAsync(Guid.NewGuid(), 0, HandleExpiry.Never));

        var handle = Guid.NewGuid();
        var opened = await controller.OpenAsync(handle, expiry);
        Assert.Equal(VolumeError.None, opened.Error);
        var renewing = Stopwatch.StartNew();
        var lastRenewalSent = 0L;
        while (renewing.Elapsed < expiry * 3)
        {
            lastRenewalSent = Stopwatch.GetTimestamp();
            Assert.Equal(new HandleRenewal(HandleState.Held, opened.Epoch), await controller.KeepHandleAsync(handle, opened.Epoch, expiry));
            await Task.Delay(expiry / 5);
        }

        // A handle this attachment never held (one of an earlier attachment, dropped by its client) is not taken on.
        Assert.Equal(HandleState.NotHeld, (await controller.KeepHandleAsync(Guid.NewGuid(), opened.Epoch - 1, expiry)).State);

        Assert.Equal("compute-1", (await volume.GetAsync()).Volume!.AttachedNode);

        await DetachedWithinAsync(volume, "the volume stayed attached for a handle nobody renewed");

        // Not before its expiry, counted from the last renewal (the controller stamps it once received, so no earlier
        // than when it was sent); within one more lease tick (2.5 s), plus the detach and this test's polling.
        Assert.InRange(Stopwatch.GetElapsedTime(lastRenewalSent), expiry, expiry + TimeSpan.FromSeconds(7));
        Assert.Equal(HandleState.Closed, (await controller.KeepHandleAsync(handle, opened.Epoch, expiry)).State);
        Assert.Equal(IoStatus.NotAttached, await controller.WriteAcknowledgedAsync(0, new byte[4096]));
        var elsewhere = await volume.AttachAsync("compute-2", force: false);
        Assert.True(elsewhere.Ok, elsewhere.Message);
        await volume.DetachAsync("compute-2", elsewhere.Attachment!.Epoch);
    }

    /// <summary>
    /// The client API end to end: a <see cref="VolumeHandle"/> keeps the volume attached by renewing itself well past its
    /// expiry; when its client stops without disposing it (a process that died), the volume is released within the
    /// expiry and another compute node opens it, written data intact.
    /// </summary>
    [Fact]
    public async Task AClientGoneWithoutClosing_ReleasesItsVolume_AndAnotherNodeOpensIt()
    {
        await cluster.CreateVolumeAsync("client-gone", 16L << 20);
        var volume = cluster.Grains.GetGrain<IVolumeGrain>("client-gone");
        var expiry = TimeSpan.FromSeconds(3);
        var data = new byte[4096];
        Random.Shared.NextBytes(data);

        var client = await cluster.Cluster.ConnectAsync();
        var abandoned = await VolumeHandle.OpenAsync(client.Cluster, "client-gone", "compute-1", expiry);
        Assert.Equal(IoStatus.Ok, await abandoned.WriteAsync(8192, data));
        await Task.Delay(expiry * 3);
        Assert.False(abandoned.Expired);
        Assert.Equal("compute-1", (await volume.GetAsync()).Volume!.AttachedNode);

        await client.DisposeAsync();
        var gone = await DetachedWithinAsync(volume, "the volume stayed attached for a client that is gone");

        Assert.InRange(gone, TimeSpan.FromSeconds(1), expiry + TimeSpan.FromSeconds(6));
        await using var successor = await VolumeHandle.OpenAsync(cluster.Grains, "client-gone", "compute-2");
        var read = await successor.ReadAsync(8192, 4096);
        Assert.Equal(IoStatus.Ok, read.Status);
        Assert.Equal(data, read.Data);
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
        Assert.True(await controller.ResumeAsync(epoch, [new HandleHold(handle, HandleExpiry.Never)]));

        var after = (await volume.GetAsync()).Volume!;
        Assert.Null(after.AttachedNode);
        Assert.Equal(epoch, after.Epoch);

        // A write of that client still in flight must not attach the volume again, implicitly, for nobody.
        Assert.Equal(IoStatus.NotAttached, await controller.WriteAcknowledgedAsync(0, new byte[4096]));
        Assert.Null((await volume.GetAsync()).Volume!.AttachedNode);
        var elsewhere = await volume.AttachAsync("compute-2", force: false);
        Assert.True(elsewhere.Ok, elsewhere.Message);
    }

    /// <summary>
    /// When a controller's activation is lost and I/O attaches a new one before any hand-over (an implicit hold), the
    /// next renewal of a client handle that held the lost attachment is taken on, replacing the implicit hold: so the
    /// volume still detaches when that client goes silent. A handle of an older attachment is not taken on.
    /// </summary>
    [Fact]
    public async Task ARenewalOfAHandleTheLostActivationHeld_IsTakenOn_AndReplacesTheImplicitHold()
    {
        var (volume, controller, epoch) = await AttachedWithoutAControllerAsync("taken-on");
        Assert.Equal(IoStatus.Ok, await controller.WriteAcknowledgedAsync(0, new byte[4096]));
        var attached = (await volume.GetAsync()).Volume!;
        Assert.Equal("compute-1", attached.AttachedNode);
        Assert.True(attached.Epoch > epoch);

        Assert.Equal(HandleState.NotHeld, (await controller.KeepHandleAsync(Guid.NewGuid(), epoch - 1, HandleExpiry.Min)).State);
        var handle = Guid.NewGuid();
        Assert.Equal(new HandleRenewal(HandleState.Held, attached.Epoch), await controller.KeepHandleAsync(handle, epoch, HandleExpiry.Min));
        Assert.Equal(new HandleRenewal(HandleState.Held, attached.Epoch), await controller.KeepHandleAsync(handle, attached.Epoch, HandleExpiry.Min));

        await DetachedWithinAsync(volume, "the implicit hold outlived the handle that replaced it");

        Assert.Equal(HandleState.Closed, (await controller.KeepHandleAsync(handle, attached.Epoch, HandleExpiry.Min)).State);
    }

    /// <summary>The resume of a handle still open attaches again on the same node, under a new epoch.</summary>
    [Fact]
    public async Task AResumeForAHandleStillOpen_AttachesAgain_AndItsCloseDetaches()
    {
        var (volume, controller, epoch) = await AttachedWithoutAControllerAsync("resume-open");
        var handle = Guid.NewGuid();

        Assert.True(await controller.ResumeAsync(epoch, [new HandleHold(handle, HandleExpiry.Never)]));

        var resumed = (await volume.GetAsync()).Volume!;
        Assert.Equal("compute-1", resumed.AttachedNode);
        Assert.True(resumed.Epoch > epoch);
        await controller.CloseAsync(handle);
        Assert.Null((await volume.GetAsync()).Volume!.AttachedNode);
    }

    /// <summary>Waits (at most 20 s) until nothing holds <paramref name="volume"/> attached; returns how long that took.</summary>
    private static async Task<TimeSpan> DetachedWithinAsync(IVolumeGrain volume, string failure)
    {
        var waited = Stopwatch.StartNew();
        while ((await volume.GetAsync()).Volume!.AttachedNode is not null)
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(20), failure);
            await Task.Delay(200);
        }

        return waited.Elapsed;
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
