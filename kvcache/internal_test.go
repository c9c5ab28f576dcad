package kvcache

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConvertDropsBlocks: Convert must release the full blocks at once (no
// reference left for the GC to trip over) and a Reset must drop the
// converted layer's streaming slots.
func TestConvertDropsBlocks(t *testing.T) {
	c, err := New(Shape{KVHeads: 1, HeadDim: 4}, []Policy{Full()}, WithBlockTokens(8))
	require.NoError(t, err)
	k := make([]float32, 100*4)
	pos := make([]int32, 100)
	for i := range pos {
		pos[i] = int32(i)
	}
	require.NoError(t, c.Append(0, k, k, pos))
	f := c.layers[0].(*full)
	require.Len(t, f.blocks, 13)
	require.NoError(t, c.Convert(0, Streaming(2, 5)))
	require.Nil(t, f.blocks, "the full layer's blocks are released")
	require.Zero(t, f.n)
	l := c.layers[0].(*streaming)
	require.Len(t, l.pos, 7)
	require.Equal(t, []int32{0, 1, 96, 97, 98, 99}, append(append([]int32(nil), l.pos[:2]...), l.pos[2:2+l.filled]...))
	require.Equal(t, 4, l.head, "next token goes to the one free ring slot")
	c.Reset()
	require.IsType(t, (*full)(nil), c.layers[0])
	require.Zero(t, c.layers[0].Capacity())
	require.Equal(t, Full(), c.layers[0].Policy())
}
