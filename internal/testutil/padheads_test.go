package testutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPadHeadsLayout widens stories260K (head_dim 8, 8 query heads, 4 KV heads) to head_dim
// 32 with 3 copies of each query head and checks the layout element by element: the config,
// k_proj and v_proj rows at positions 0..3 and 16..19 of each head, q_proj rows doubled and repeated,
// o_proj columns on the first copy only, every other element zero.
func TestPadHeadsLayout(t *testing.T) {
	src := Testdata(t, "stories260K")
	dst := t.TempDir()
	require.NoError(t, PadHeads(dst, src, 32, 3))
	b, err := os.ReadFile(filepath.Join(dst, "config.json"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(b, &cfg))
	require.Equal(t, 32.0, cfg["head_dim"])
	require.Equal(t, 24.0, cfg["num_attention_heads"])
	require.Equal(t, 4.0, cfg["num_key_value_heads"])
	require.Equal(t, 1e16, cfg["rope_theta"])

	read := func(dir string) map[string]Tensor {
		ts, err := ReadSafetensors(filepath.Join(dir, "model.safetensors"))
		require.NoError(t, err)
		m := map[string]Tensor{}
		for _, x := range ts {
			m[x.Name] = x
		}
		return m
	}
	a, w := read(src), read(dst)
	require.Len(t, w, len(a))
	pos := []int{0, 1, 2, 3, 16, 17, 18, 19}
	for l := range 5 {
		p := "model.layers." + strconv.Itoa(l) + ".self_attn."
		q0, q1 := f32s(a[p+"q_proj.weight"].Data), f32s(w[p+"q_proj.weight"].Data)
		o0, o1 := f32s(a[p+"o_proj.weight"].Data), f32s(w[p+"o_proj.weight"].Data)
		require.Equal(t, []int{24 * 32, 64}, w[p+"q_proj.weight"].Shape)
		require.Equal(t, []int{64, 24 * 32}, w[p+"o_proj.weight"].Shape)
		for _, kv := range []string{"k_proj.weight", "v_proj.weight"} {
			x0, x1 := f32s(a[p+kv].Data), f32s(w[p+kv].Data)
			require.Equal(t, []int{4 * 32, 64}, w[p+kv].Shape)
			want := make([]float32, len(x1))
			for h := range 4 {
				for d, at := range pos {
					copy(want[(h*32+at)*64:][:64], x0[(h*8+d)*64:][:64])
				}
			}
			require.Equal(t, want, x1, "%s%s", p, kv)
		}
		wantQ := make([]float32, len(q1))
		wantO := make([]float32, len(o1))
		for h := range 24 {
			kv, r := h/6, h%6
			sh := 2*kv + r%2 // the original head it copies
			for d, at := range pos {
				for c := range 64 {
					wantQ[(h*32+at)*64+c] = 2 * q0[(sh*8+d)*64+c]
					if r < 2 {
						wantO[c*768+h*32+at] = o0[c*64+sh*8+d]
					}
				}
			}
		}
		require.Equal(t, wantQ, q1, "%sq_proj", p)
		require.Equal(t, wantO, o1, "%so_proj", p)
	}
	require.Equal(t, a["model.embed_tokens.weight"], w["model.embed_tokens.weight"])
}

// TestPadHeadsRefuses: what PadHeads cannot widen exactly is an error, not a wrong checkpoint.
func TestPadHeadsRefuses(t *testing.T) {
	src := Testdata(t, "stories260K")
	for _, c := range []struct{ dim, copies int }{{16, 1}, {12, 1}, {4, 1}, {32, 0}, {72, 1}} {
		require.Error(t, PadHeads(t.TempDir(), src, c.dim, c.copies), "%+v", c)
	}
	b, err := os.ReadFile(filepath.Join(src, "config.json"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(b, &cfg))
	for key, v := range map[string]any{"rope_scaling": map[string]any{"rope_type": "linear", "factor": 2.0}, "partial_rotary_factor": 0.5} {
		dir := t.TempDir()
		c := map[string]any{key: v}
		for k, x := range cfg {
			if k != key {
				c[k] = x
			}
		}
		nb, err := json.Marshal(c)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), nb, 0o644))
		require.NoError(t, CopyFile(filepath.Join(dir, "model.safetensors"), filepath.Join(src, "model.safetensors")))
		err = PadHeads(t.TempDir(), dir, 32, 1)
		require.ErrorContains(t, err, key)
	}
}
