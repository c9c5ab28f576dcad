package model_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// stories260K has head_dim 8 and 2 query heads per KV head: attention's decode path (5 to 8
// query heads per KV head) and the integer Q8 route (head width a multiple of 32) never run
// on it. testutil.PadHeads builds the same function with head_dim 32 and each query head
// repeated, so those routes run with trained weights.
const (
	padDim    = 32
	padCopies = 3 // 6 query heads per KV head (Qwen2.5-1.5B's grouping)
)

// The selectlayers -eval settings of the KV quality targets.
const (
	evalPrompt = 128
	evalSink   = 4
	evalWindow = 32
)

// paddedStories writes the head_dim-padDim version of stories260K with copies copies of each
// query head to a temporary directory and returns it.
func paddedStories(t testing.TB, copies int) string {
	t.Helper()
	dst := t.TempDir()
	require.NoError(t, testutil.PadHeads(dst, testutil.Testdata(t, "stories260K"), padDim, copies))
	return dst
}

func readTokens(t testing.TB, path string) []int32 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var toks []int32
	require.NoError(t, json.Unmarshal(b, &toks))
	return toks
}

// evalTexts are the texts the KV quality targets are measured on: the model's own greedy
// continuation and a story written for the repository (never tuned on).
func evalTexts(t testing.TB) map[string][]int32 {
	return map[string][]int32{
		"greedy256": readTokens(t, testutil.Testdata(t, "stories260K", "greedy256.json")),
		"unseen":    readTokens(t, testutil.Testdata(t, "train-stories260K", "unseen.json")),
	}
}

// rowsOf copies the rows of a Forward result.
func rowsOf(t testing.TB, s *model.Session, toks []int32, vocab int) [][]float32 {
	t.Helper()
	lg, err := s.Forward(context.Background(), toks)
	require.NoError(t, err)
	data := lg.Data().([]float32)
	rows := make([][]float32, len(toks))
	for i := range rows {
		rows[i] = data[i*vocab : (i+1)*vocab]
	}
	return rows
}

// TestPadHeadsEquivalent: the padded stories260K computes the original's function. Its
// inverse frequencies of the pairs that hold data are the original's bit for bit (θ = 1e4
// becomes 1e16, float32(1e16) is 1e16·(1+2.7e-8), and its 1/16, 1/8 and 3/16 powers round to
// 10, 100 and 1000 as 1e4's 1/4, 1/2 and 3/4 powers do); the q scale by 2 and the RoPE
// rotation are exact; Test mode picks the same layers with the same ratios. The logits differ
// only by summation order — o_proj sums 768 products (most of them zero) in another grouping
// than 64, attention runs the decode path (6 query heads per KV head) where the original runs
// the tiled one, and dots of 32 lanes group the 8 real products differently — which leaves a
// few float32 ulps per activation: measured at most 1.8e-5 (AVX2) and 2.2e-5 (pure Go) on
// every path, where logits reach 22 (a float32 ulp there is 1.9e-6); the bound is 1e-4. Paths: one forward over the prompt and one-token decode steps over
// the rest, in full attention, in Test mode (hybrid after the prompt) and in fixed mode (the
// streaming layers from the start, the prompt in chunks of 32 over the cached ones), with 6
// and 8 query heads per KV head (8 fills the decode row).
func TestPadHeadsEquivalent(t *testing.T) {
	ctx := context.Background()
	orig := loadModel(t, testutil.Testdata(t, "stories260K"), model.WithoutTokenizer())
	toks := evalTexts(t)["greedy256"]
	oc := orig.Config()
	inv0, sc0 := oc.RopeInvFreq()
	stream := []model.StreamOption{model.WithSink(evalSink), model.WithWindow(evalWindow)}
	const tol = 1e-4
	copies := []int{padCopies, 4}
	if raceEnabled {
		copies = copies[:1] // the race detector makes it 8× slower; 8 heads run without it
	}
	for _, copies := range copies {
		t.Run(fmt.Sprintf("G%d", 2*copies), func(t *testing.T) {
			pad := loadModel(t, paddedStories(t, copies), model.WithoutTokenizer())
			pc := pad.Config()
			require.Equal(t, padDim, pc.HeadDim)
			require.Equal(t, oc.NumHeads*copies, pc.NumHeads)
			require.Equal(t, oc.NumKVHeads, pc.NumKVHeads)
			require.Equal(t, 1e16, pc.RopeTheta)
			inv, sc := pc.RopeInvFreq()
			require.Equal(t, sc0, sc)
			for i, f := range inv0 {
				require.Equal(t, math.Float32bits(f), math.Float32bits(inv[i]), "pair %d", i)
			}

			// Test mode: the same ratios (the copies keep the mean over query heads) and
			// layers.
			so, err := orig.NewSession(model.TestMode(stream...))
			require.NoError(t, err)
			sp, err := pad.NewSession(model.TestMode(stream...))
			require.NoError(t, err)
			_, err = so.Next(ctx, toks[:evalPrompt])
			require.NoError(t, err)
			_, err = sp.Next(ctx, toks[:evalPrompt])
			require.NoError(t, err)
			require.Equal(t, so.Lazy(), sp.Lazy())
			require.NotEmpty(t, so.Lazy())
			require.InDeltaSlice(t, so.Ratios(), sp.Ratios(), 1e-6)
			lazy := so.Lazy()

			for _, mode := range []struct {
				name string
				opts []model.SessionOption
			}{
				{"full", []model.SessionOption{model.FullAttention()}},
				{"test", []model.SessionOption{model.TestMode(stream...)}},
				{"fixed", []model.SessionOption{model.FixedMode(lazy, stream...), model.WithChunkSize(32)}},
			} {
				so, err := orig.NewSession(mode.opts...)
				require.NoError(t, err)
				sp, err := pad.NewSession(mode.opts...)
				require.NoError(t, err)
				var prefill, decode, size float64
				want, got := rowsOf(t, so, toks[:evalPrompt], oc.VocabSize), rowsOf(t, sp, toks[:evalPrompt], oc.VocabSize)
				for i := range want {
					prefill = math.Max(prefill, maxAbsDiff(want[i], got[i]))
					size = math.Max(size, maxAbsDiff(want[i], make([]float32, len(want[i]))))
					require.Equal(t, argmax(want[i]), argmax(got[i]), "%s prefill row %d", mode.name, i)
				}
				if mode.name == "test" {
					require.Equal(t, lazy, sp.Lazy())
				}
				for i := evalPrompt; i < len(toks); i++ {
					a, err := so.Next(ctx, toks[i:i+1])
					require.NoError(t, err)
					b, err := sp.Next(ctx, toks[i:i+1])
					require.NoError(t, err)
					decode = math.Max(decode, maxAbsDiff(a, b))
					require.Equal(t, argmax(a), argmax(b), "%s decode row %d", mode.name, i)
				}
				t.Logf("%s: max |Δlogit| prefill %.2g, decode %.2g (max |logit| %.1f)", mode.name, prefill, decode, size)
				require.Less(t, prefill, tol, mode.name)
				require.Less(t, decode, tol, mode.name)
				so.Close()
				sp.Close()
			}
		})
	}
}

// evalNLL scores toks as selectlayers -eval does: a Test-mode prefill of the first evalPrompt
// tokens with every layer full and KV type kv, the lazy layers made streaming (sink evalSink,
// window evalWindow), then one-token decode steps teacher-forced over the rest; it returns the
// mean NLL (nats) of tokens evalPrompt.. (the first predicted from the prefill's last row, the
// other len(toks)−evalPrompt−1 from decode steps, which read the cache of type kv) and the
// logits of the decode steps.
func evalNLL(t testing.TB, m *model.Model, toks []int32, lazy []int, kv kvcache.Type) (float64, [][]float32) {
	t.Helper()
	ctx := context.Background()
	s, err := m.NewSession(model.TestMode(model.WithSink(evalSink), model.WithWindow(evalWindow), model.WithKeep(1)), model.WithKV(kv))
	require.NoError(t, err)
	defer s.Close()
	logits, err := s.Next(ctx, toks[:evalPrompt])
	require.NoError(t, err)
	require.NoError(t, s.MakeStreaming(lazy...))
	var nll float64
	var rows [][]float32
	for i := evalPrompt; i < len(toks); i++ {
		nll -= logProb(logits, toks[i])
		if i+1 < len(toks) {
			logits, err = s.Next(ctx, toks[i:i+1])
			require.NoError(t, err)
			rows = append(rows, append([]float32(nil), logits...))
		}
	}
	return nll / float64(len(toks)-evalPrompt), rows
}

// logProb returns log softmax(logits)[id] in float64.
func logProb(logits []float32, id int32) float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	return float64(logits[id]) - mx - math.Log(sum)
}

// kvTypes returns every KV element type kvcache knows (those whose name parses back).
func kvTypes() []kvcache.Type {
	var out []kvcache.Type
	for t := kvcache.Type(0); ; t++ {
		if u, err := kvcache.ParseType(t.String()); err != nil || u != t {
			return out
		}
		out = append(out, t)
	}
}

// kvLimits are issue #11's quality targets: the largest NLL increase over F32 of each reduced
// KV type, relative.
var kvLimits = map[kvcache.Type]float64{kvcache.BF16: 0.003, kvcache.Q8: 0.01, kvcache.Q4: 0.03}

// kvShortfalls are the types whose decode route misses its kvLimits target today, with the
// bound the test holds them to meanwhile (a regression guard, not the target); none now. The
// integer Q8 route with int8 queries measured +1.67% (full) and +1.36% (by ratio) on
// greedy256; with int16 queries it measures +0.52% / +0.42% (the float Q8 route of the
// head_dim-8 original: +0.48% / +0.37%), the rest being its 7-bit P·V weights. Add an entry
// only with a measured reason.
var kvShortfalls = map[kvcache.Type]float64{}

// TestPadHeadsKVQuality holds every KV element type to the quality targets on the padded
// stories260K, where the decode steps take attention's decode path and, for Q8, the integer
// route (and any route that needs a head width of 32 or 5 to 8 query heads per KV head):
// the NLL of full attention and of the by-ratio hybrid (the layers Test mode picks on the
// prompt) within the type's kvLimits of F32's, on greedy256 and on unseen text, scored as
// selectlayers -eval scores (evalNLL: 127 of the 128 scored rows are decode steps). A type
// without a limit fails the test; a type listed in kvShortfalls is held to that bound and its
// miss of the target is logged.
//
// It also checks that the integer Q8 route ran: the padded model's cache holds what the
// original's holds (one Q8 scale per head's 8 real elements and its zeros, the same codes;
// the same bfloat16 values), so where both decodes read it with float arithmetic their logits
// agree to float rounding, a little more where an ulp of difference moves a value across a
// rounding boundary of the stored type (measured up to 0.009 for BF16 on the AVX2 route, 0.021 on the pure-Go one). The integer route
// rounds the queries and the P·V weights besides, which the original's float route does not:
// Q8's logits must differ from the original's by more than 10× BF16's difference (measured
// 0.47–0.86 with int16 queries and 7-bit weights; 1.1–1.2 with int8 queries).
func TestPadHeadsKVQuality(t *testing.T) {
	ctx := context.Background()
	orig := loadModel(t, testutil.Testdata(t, "stories260K"), model.WithoutTokenizer())
	pad := loadModel(t, paddedStories(t, padCopies), model.WithoutTokenizer())
	types := kvTypes()
	require.Contains(t, types, kvcache.Q8)
	texts := evalTexts(t)
	for _, name := range []string{"greedy256", "unseen"} {
		toks := texts[name]
		s, err := pad.NewSession(model.TestMode(model.WithSink(evalSink), model.WithWindow(evalWindow)))
		require.NoError(t, err)
		_, err = s.Next(ctx, toks[:evalPrompt])
		require.NoError(t, err)
		lazy := s.Lazy()
		require.NotEmpty(t, lazy)
		s.Close()
		for _, choice := range []struct {
			name string
			lazy []int
		}{{"full", nil}, {"ratio", lazy}} {
			base, _ := evalNLL(t, pad, toks, choice.lazy, kvcache.F32)
			origBase, _ := evalNLL(t, orig, toks, choice.lazy, kvcache.F32)
			diffs := map[kvcache.Type]float64{}
			for _, typ := range types {
				if typ == kvcache.F32 {
					continue
				}
				limit, ok := kvLimits[typ]
				require.True(t, ok, "KV type %v has no quality limit in kvLimits", typ)
				nll, rows := evalNLL(t, pad, toks, choice.lazy, typ)
				rel := nll/base - 1
				t.Logf("%s %s %v: NLL %.4f, f32 %.4f (%+.2f%%)", name, choice.name, typ, nll, base, 100*rel)
				if typ == kvcache.BF16 || typ == kvcache.Q8 {
					origNLL, origRows := evalNLL(t, orig, toks, choice.lazy, typ)
					for i := range rows {
						diffs[typ] = math.Max(diffs[typ], maxAbsDiff(rows[i], origRows[i]))
					}
					t.Logf("%s %s %v: head_dim 8: NLL %.4f, f32 %.4f (%+.2f%%); decode logits max |Δ| %.2g from head_dim 8's",
						name, choice.name, typ, origNLL, origBase, 100*(origNLL/origBase-1), diffs[typ])
				}
				if bound, short := kvShortfalls[typ]; short && rel >= limit {
					t.Logf("%s %s %v: %+.2f%% misses the %+.1f%% target (known shortfall, held to %+.1f%%)", name, choice.name, typ, 100*rel, 100*limit, 100*bound)
					limit = bound
				}
				assert.Less(t, rel, limit, "%s %s %v", name, choice.name, typ)
			}
			require.Greater(t, diffs[kvcache.Q8], 10*diffs[kvcache.BF16], "%s %s: the Q8 decode did not take the integer route", name, choice.name)
		}
	}
}
