using System.Diagnostics;
using Converge.Storage;

namespace Converge.Grains.Extents;

/// <summary>
/// In-memory metadata of one extent: per block LSN, CRC32C and state, plus the generation of the slot it was last
/// persisted to. About 21 bytes a block (21 KiB for 1024 blocks). Not thread-safe: the store guards it.
/// </summary>
internal sealed partial class ExtentMetadata
{
    private readonly Lsn[] _lsns;
    private readonly uint[] _crcs;
    private readonly BlockState[] _states;

    public ExtentMetadata(int blocksPerExtent)
    {
        Debug.Assert(blocksPerExtent > 0);
        _lsns = new Lsn[blocksPerExtent];
        _crcs = new uint[blocksPerExtent];
        _states = new BlockState[blocksPerExtent];
    }

    public int BlockCount => _states.Length;

    /// <summary>Generation of the slot this state was loaded from or last written to; 0 when never persisted.</summary>
    public ulong Generation { get; set; }

    public Lsn HighWater { get; private set; }

    public int DataBlocks { get; private set; }

    public int ZeroBlocks { get; private set; }

    public Lsn LsnOf(int block) => _lsns[block];

    public uint CrcOf(int block) => _crcs[block];

    public BlockState StateOf(int block) => _states[block];

    public void Set(int block, Lsn lsn, BlockState state, uint crc)
    {
        // Callers compare LSNs first; going backwards here would let an old record overwrite a newer block.
        if (lsn <= _lsns[block] || lsn.IsNone)
        {
            throw new InvalidOperationException($"block {block}: LSN {lsn} is not above the stored {_lsns[block]}");
        }

        Debug.Assert(state is BlockState.Data or BlockState.Zero);
        Count(_states[block], -1);
        _lsns[block] = lsn;
        _crcs[block] = state == BlockState.Data ? crc : 0;
        _states[block] = state;
        Count(state, 1);
        HighWater = Lsn.Max(HighWater, lsn);
    }

    /// <summary>Forgets everything (an extent whose metadata was lost, about to be rebuilt by an import).</summary>
    public void Reset()
    {
        Array.Clear(_lsns);
        Array.Clear(_crcs);
        Array.Clear(_states);
        HighWater = Lsn.None;
        DataBlocks = 0;
        ZeroBlocks = 0;
    }

    private void Count(BlockState state, int delta)
    {
        if (state == BlockState.Data)
        {
            DataBlocks += delta;
        }
        else if (state == BlockState.Zero)
        {
            ZeroBlocks += delta;
        }
    }

    private void LoadBlock(int block, Lsn lsn, BlockState state, uint crc)
    {
        _lsns[block] = lsn;
        _crcs[block] = crc;
        _states[block] = state;
        Count(state, 1);
        HighWater = Lsn.Max(HighWater, lsn);
    }
}
