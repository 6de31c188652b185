namespace Converge.Grains.Controller;

/// <summary>
/// The client handles an attachment is held for. Clients name their handles, so an open retried after its reply was
/// lost holds the volume once, and a close retried likewise releases it once. Closed ids are remembered (a bounded
/// number of them) so that an open still on its way when its close arrived is refused rather than holding the volume
/// with nobody left to close it.
/// </summary>
/// <remarks>
/// The implicit hold stands for a client this activation never saw open: I/O that reached a fresh activation after the
/// grain directory lost the old one attaches implicitly, and the first close of an id this activation does not know
/// releases that hold, as the client's own close would have released its handle in the old activation.
/// </remarks>
public sealed class OpenHandles
{
    /// <summary>How many closed ids are remembered; far more than the opens that can be in flight for one volume.</summary>
    public const int RememberedClosed = 256;

    private readonly HashSet<Guid> _open = [];
    private readonly HashSet<Guid> _closed = [];
    private readonly Queue<Guid> _closedOrder = new();
    private bool _implicit;

    /// <summary>Holds, counting the implicit one.</summary>
    public int Count => _open.Count + (_implicit ? 1 : 0);

    public bool IsHeld(Guid handleId) => _open.Contains(handleId);

    public bool WasClosed(Guid handleId) => _closed.Contains(handleId);

    /// <summary>Adds a hold for <paramref name="handleId"/>; false when that id was closed already (the open is refused).</summary>
    public bool TryOpen(Guid handleId)
    {
        if (handleId == Guid.Empty)
        {
            throw new ArgumentException("a handle id must not be empty", nameof(handleId));
        }

        if (_closed.Contains(handleId))
        {
            return false;
        }

        _open.Add(handleId);
        return true;
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

    /// <summary>The open ids, for a successor activation (<see cref="Adopt"/>).</summary>
    public Guid[] Snapshot() => [.. _open];

    /// <summary>
    /// Takes over the holds of a departing activation, beside any this one has. They replace an implicit hold (I/O from
    /// one of those clients made it); with no hold at all afterwards, one implicit hold stands for the unknown client.
    /// </summary>
    public void Adopt(IEnumerable<Guid> handleIds)
    {
        var before = _open.Count;
        foreach (var id in handleIds)
        {
            if (id != Guid.Empty && !_closed.Contains(id))
            {
                _open.Add(id);
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
}
