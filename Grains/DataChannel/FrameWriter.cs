using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Converge.Grains.DataChannel;

/// <summary>
/// Sends frames on one socket in order, from any thread, without copying bodies: frames queued while a send is in
/// flight leave together in the next one (one <c>sendmsg</c> with a buffer per header and body), so many replies of one
/// group commit, or many appends of one moment, cost one system call.
/// </summary>
/// <remarks>
/// A body is borrowed until the peer has answered its frame or the connection has failed; the writer never returns or
/// changes it. A failed send fails the writer for good and reports to <c>onFailure</c>; the connection's owner closes it.
/// </remarks>
public sealed class FrameWriter(Socket socket, Action<Exception> onFailure)
{
    /// <summary>Buffers per send; Linux takes at most 1,024 per <c>sendmsg</c>.</summary>
    private const int MaxSegmentsPerSend = 512;

    private readonly object _lock = new();
    private List<ArraySegment<byte>> _queued = [];
    private List<ArraySegment<byte>> _sending = [];
    private bool _flushing;
    private bool _failed;

    /// <summary>Queues one frame; false when the writer has failed (the frame is not sent).</summary>
    public bool Send(DataFrameType type, ulong requestId, ReadOnlyMemory<byte> body)
    {
        var header = new byte[DataFrameHeader.Length];
        new DataFrameHeader(body.Length, type, requestId).Write(header);
        lock (_lock)
        {
            if (_failed)
            {
                return false;
            }

            _queued.Add(header);
            if (body.Length > 0)
            {
                _queued.Add(AsSegment(body));
            }

            if (_flushing)
            {
                return true;
            }

            _flushing = true;
        }

        _ = FlushAsync();
        return true;
    }

    private async Task FlushAsync()
    {
        try
        {
            while (true)
            {
                lock (_lock)
                {
                    if (_queued.Count == 0)
                    {
                        _flushing = false;
                        return;
                    }

                    (_queued, _sending) = (_sending, _queued);
                }

                for (var at = 0; at < _sending.Count; at += MaxSegmentsPerSend)
                {
                    var part = at == 0 && _sending.Count <= MaxSegmentsPerSend ? _sending : _sending.GetRange(at, Math.Min(MaxSegmentsPerSend, _sending.Count - at));
                    var expected = 0;
                    foreach (var segment in part)
                    {
                        expected += segment.Count;
                    }

                    var sent = await socket.SendAsync(part, SocketFlags.None).ConfigureAwait(false);
                    if (sent != expected)
                    {
                        throw new IOException($"sent {sent} of {expected} bytes");
                    }
                }

                _sending.Clear();
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            lock (_lock)
            {
                _failed = true;
                _queued.Clear();
                _sending.Clear();
            }

            onFailure(e);
        }
    }

    private static ArraySegment<byte> AsSegment(ReadOnlyMemory<byte> body) =>
        MemoryMarshal.TryGetArray(body, out var segment) ? segment : new ArraySegment<byte>(body.ToArray());
}
