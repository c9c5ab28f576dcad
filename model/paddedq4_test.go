package model_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// TestPadHeadsQ4IntRoute checks that Q4 decode steps take the integer Q4 route on the padded
// stories260K. The padded model with 6 query heads per KV head (the decode path at head width
// 32: the integer route) and the one with 4 (2 copies: the tiled path, which reads Q4 tiles
// with float arithmetic) compute the same keys and values, so they store the same cache; where
// both read it with float arithmetic (BF16) their decode logits agree to float rounding, and
// where the 6-head model rounds its queries and P·V weights (Q4) they must differ by more than
// 5× that (measured: Q4 0.25 against BF16's 0.0003 on the AVX2 route, 0.24 against 0.021 on
// the pure-Go one, whose BF16 reads round differently between the two paths).
func TestPadHeadsQ4IntRoute(t *testing.T) {
	six := loadModel(t, paddedStories(t, padCopies), model.WithoutTokenizer())
	four := loadModel(t, paddedStories(t, 2), model.WithoutTokenizer())
	toks := evalTexts(t)["greedy256"]
	diff := map[kvcache.Type]float64{}
	for _, typ := range []kvcache.Type{kvcache.BF16, kvcache.Q4} {
		nll6, a := evalNLL(t, six, toks, nil, typ)
		nll4, b := evalNLL(t, four, toks, nil, typ)
		require.Len(t, a, len(b))
		for i := range a {
			diff[typ] = max(diff[typ], maxAbsDiff(a[i], b[i]))
		}
		t.Logf("%v: NLL %.4f with 6 query heads per KV head, %.4f with 4; decode logits max |Δ| %.2g", typ, nll6, nll4, diff[typ])
	}
	require.Greater(t, diff[kvcache.Q4], 5*diff[kvcache.BF16], "the Q4 decode did not take the integer route")
}
