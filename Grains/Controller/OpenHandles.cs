using System.Diagnostics;
using Converge.DataPath;

namespace Converge.Grains.Controller;

/// <summary>
/// The client handles an attachment is held for. Clients name their handles, so an open retried after its reply was
/// lost holds the volume once, and a close retried likewise releases it once. Closed ids are remembered (a bounded
/// number of them) so that an open still on its way when its close arrived is refused rather than holding the volume
/// with nobody left to close it.
/// </summary>
/// <remarks>
/// A handle opened with an expiry (<see cref="HandleExpiry"/>) is released as if closed once it goes that long without an
/// open or a renewal (<see cref="Expire"/>): its client died without closing. Times are <see cref="Stopwatch"/> ticks,
/// passed in so that the bookkeeping can be tested without waiting.
/// The implicit hold stands for a client this activation never saw open: I/O that reached a fresh activation after the
/// grain directory lost the old one attaches implicitly, and the first close of an id this activation does not know
/// releases that hold, as the client's own close would have released its handle in the old activation.
/// </remarks>
public sealed class OpenHandles
{
    /// <summary>How many closed ids are remembered; far more than the opens that can be in flight for one volume.</summary>
    public const int RememberedClosed = 256;

    private readonly Dictionary<Guid, Lease> _open = [];
    private readonly HashSet<Guid> _closed = [];
    private readonly Queue<Guid> _closedOrder = new();
    private bool _implicit;

    /// <summary>Holds, counting the implicit one.</summary>
    public int Count => _open.Count + (_implicit ? 1 : 0);

    public bool IsHeld(Guid handleId) => _open.ContainsKey(handleId);

    public bool WasClosed(Guid handleId) => _closed.Contains(handleId);

    /// <summary>
    /// Adds a hold for <paramref name="handleId"/> that expires when not renewed within <paramref name="expiry"/> (zero:
    /// never); an open repeated renews it. False when that id was closed already (the open is refused).
    /// </summary>
    public bool TryOpen(Guid handleId, TimeSpan expiry = default, long nowTicks = 0)
    {
        if (handleId == Guid.Empty)
        {
            throw new ArgumentException("a handle id must not be empty", nameof(handleId));
        }

        if (_closed.Contains(handleId))
        {
            return false;
        }

        _open[handleId] = new Lease(expiry, nowTicks);
        return true;
    }

    /// <summary>Renews a held handle, with the expiry its client asks for now; false when it is not held.</summary>
    public bool Renew(Guid handleId, TimeSpan expiry, long nowTicks)
    {
        if (!_open.ContainsKey(handleId))
        {
            return false;
        }

        _open[handleId] = new Lease(expiry, nowTicks);
        return true;
    }

    /// <summary>
    /// Releases every expiring handle not renewed within its expiry by <paramref name="nowTicks"/>, remembering each as
    /// closed (a late renewal is answered <see cref="HandleState.Closed"/>); returns them.
    /// </summary>
    public List<Guid> Expire(long nowTicks)
    {
        List<Guid>? expired = null;
        foreach (var (id, lease) in _open)
        {
            if (lease.Expiry > TimeSpan.Zero && Stopwatch.GetElapsedTime(lease.RenewedTicks, nowTicks) > lease.Expiry)
            {
                (expired ??= []).Add(id);
            }
        }

        if (expired is null)
        {
            return [];
        }

        foreach (var id in expired)
        {
            _open.Remove(id);
            Remember(id);
        }

        return expired;
    }

    public void OpenImplicitly() => _implicit = true;

    /// <summary>
    /// Releases <paramref name="handleId"/>'s hold, or the implicit hold when the id is unknown; remembers the id as
    /// closed. True when a hold was released; a repeated close releases nothing.
    /// </summary>
    public bool Close(Guid handleId)
    {
        if (_closed.Contains(handleId))
        {
            return false;
        }

        Remember(handleId);
        if (_open.Remove(handleId))
        {
            return true;
        }

        if (_implicit)
        {
            _implicit = false;
            return true;
        }

        return false;
    }

    /// <summary>The open handles with their expiries, for a successor activation (<see cref="Adopt"/>).</summary>
    public HandleHold[] Snapshot() => [.. _open.Select(e => new HandleHold(e.Key, e.Value.Expiry))];

    /// <summary>
    /// Takes over the holds of a departing activation, beside any this one has, their expiries counted from
    /// <paramref name="nowTicks"/>. They replace an implicit hold (I/O from one of those clients made it); with no hold at
    /// all afterwards, one implicit hold stands for the unknown client.
    /// </summary>
    public void Adopt(IEnumerable<HandleHold> handles, long nowTicks = 0)
    {
        var before = _open.Count;
        foreach (var hold in handles)
        {
            if (hold.Id != Guid.Empty && !_closed.Contains(hold.Id) && !_open.ContainsKey(hold.Id))
            {
                _open[hold.Id] = new Lease(hold.Expiry, nowTicks);
            }
        }

        if (_open.Count > before)
        {
            _implicit = false;
        }

        if (_open.Count == 0)
        {
            _implicit = true;
        }
    }

    private void Remember(Guid handleId)
    {
        if (_closedOrder.Count == RememberedClosed)
        {
            _closed.Remove(_closedOrder.Dequeue());
        }

        _closed.Add(handleId);
        _closedOrder.Enqueue(handleId);
    }

    private readonly record struct Lease(TimeSpan Expiry, long RenewedTicks);
}
