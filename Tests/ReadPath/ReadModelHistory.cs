using System.Text;

namespace Converge.Tests.ReadPath;

/// <summary>
/// Which acknowledged writes touched each block, in completion order, so a wrong read can name the version it returned
/// (an older write's bytes, or bytes no write ever had). Write data is regenerated from the op's seed when needed.
/// </summary>
internal sealed class ReadModelHistory
{
    private const int ShownVersions = 6;
    private readonly Dictionary<long, List<ReadModelOp>> _byBlock = [];

    public void Applied(ReadModelOp op)
    {
        var first = op.OffsetBytes / ReadPathSupport.BlockBytes;
        var last = (op.OffsetBytes + op.LengthBytes - 1) / ReadPathSupport.BlockBytes;
        for (var block = first; block <= last; block++)
        {
            if (!_byBlock.TryGetValue(block, out var list))
            {
                _byBlock[block] = list = [];
            }

            list.Add(op);
        }
    }

    /// <summary>
    /// For the block of <paramref name="wrongOffset"/>: its writes, newest first, each marked with whether its bytes match
    /// what the read returned from that offset up to the end of the block, the read, or the write (whichever is first).
    /// </summary>
    public string Describe(long wrongOffset, long readOffset, ReadOnlySpan<byte> returned)
    {
        var bs = ReadPathSupport.BlockBytes;
        var block = wrongOffset / bs;
        var text = new StringBuilder($"block {block} history, newest first:");
        if (!_byBlock.TryGetValue(block, out var list) || list.Count == 0)
        {
            return text.Append(" never written").ToString();
        }

        var end = Math.Min((block + 1) * bs, readOffset + returned.Length);
        var shown = 0;
        for (var i = list.Count - 1; i >= 0 && shown < ShownVersions; i--, shown++)
        {
            var op = list[i];
            var from = Math.Max(wrongOffset, op.OffsetBytes);
            var to = Math.Min(end, op.OffsetBytes + op.LengthBytes);
            string verdict;
            if (to <= from)
            {
                verdict = "does not cover those bytes";
            }
            else
            {
                var data = op.WrittenBytes();
                var theirs = data.AsSpan((int)(from - op.OffsetBytes), (int)(to - from));
                var got = returned.Slice((int)(from - readOffset), (int)(to - from));
                verdict = theirs.SequenceEqual(got) ? $"MATCHES the returned [{from}, {to})" : $"differs on [{from}, {to})";
            }

            text.Append($" {op} {verdict};");
        }

        return text.ToString();
    }
}
