package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBenchTiny runs the bench on the tiny shape with small sizes and checks the JSON it
// prints: one object per measurement, hybrid KV below full at depth, batches under the
// budget. Speeds are not asserted (benchmarks measure them).
func TestBenchTiny(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"-shape", "tiny", "-depth", "0,3000", "-reps", "1", "-prefill", "64",
		"-decode", "8", "-kv-budget", "16MiB", "-json"}, &out, &errb)
	require.NoError(t, err, errb.String())
	var ms []Measurement
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var m Measurement
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		ms = append(ms, m)
	}
	require.Len(t, ms, 8) // 2 depths × 2 modes × (batch 1 + budget)
	byKey := map[[3]int]Measurement{}
	for _, m := range ms {
		mode := 0
		if m.Mode == "hybrid" {
			mode = 1
		}
		require.Positive(t, m.DecodeTPS)
		require.Positive(t, m.Weight)
		require.GreaterOrEqual(t, m.ReadBytes, m.Weight)
		if m.Batch > 1 {
			require.LessOrEqual(t, m.KVBytes, int64(16<<20))
		}
		byKey[[3]int{m.Depth, mode, min(m.Batch, 2)}] = m
	}
	full, hybrid := byKey[[3]int{3000, 0, 1}], byKey[[3]int{3000, 1, 1}]
	require.Less(t, hybrid.KVBytes, full.KVBytes)
	require.Less(t, hybrid.ReadBytes, full.ReadBytes)
	require.Greater(t, byKey[[3]int{3000, 1, 2}].Batch, byKey[[3]int{3000, 0, 2}].Batch)
}

// TestBenchKV: one fill serves every -kv type; q8 rows carry kv_type "q8" and hold the bytes
// Q8 costs: 2·(32 + 4·4) + 4 = 100 per slot for the tiny shape (4 KV heads × 8: 32 elements
// and 4 scales), against 260 at f32, so a budget batch fits 2.6 times the sequences.
func TestBenchKV(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"-shape", "tiny", "-depth", "600", "-reps", "1", "-prefill", "16",
		"-decode", "4", "-modes", "full,hybrid", "-kv-budget", "4MiB", "-kv", "f32,q8", "-json"}, &out, &errb)
	require.NoError(t, err, errb.String())
	require.Equal(t, 1, strings.Count(errb.String(), "filled in"), errb.String())
	rows := map[string][]Measurement{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var m Measurement
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		rows[m.Mode+"/"+m.KVType] = append(rows[m.Mode+"/"+m.KVType], m)
	}
	require.Len(t, rows, 4)
	// 600+4 tokens in blocks of 256: 768 slots in each of 5 layers.
	require.Equal(t, int64(5*768*(2*(4*8*4)+4)), rows["full/f32"][0].KVBytes)
	require.Equal(t, int64(5*768*(2*(4*8+4*4)+4)), rows["full/q8"][0].KVBytes)
	require.Equal(t, int(4<<20/(5*768*100)), rows["full/q8"][1].Batch)
	require.Equal(t, int(4<<20/(5*768*260)), rows["full/f32"][1].Batch)
	// Hybrid: layers 1 and 3 streaming (4+1020 slots), the others full.
	require.Equal(t, int64((3*768+2*1024)*100), rows["hybrid/q8"][0].KVBytes)
	out.Reset()
	err = run(context.Background(), []string{"-shape", "tiny", "-kv", "f32,f8"}, &out, &errb)
	require.ErrorContains(t, err, `-kv: kvcache: element type "f8"`)
}

// TestBenchQuantized: -dtype q8 and q4 run, the JSON's dtype holds the flag's value and the
// weights read per step shrink with the format.
func TestBenchQuantized(t *testing.T) {
	weight := map[string]int64{}
	for _, dt := range []string{"f32", "q8", "q4"} {
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{"-shape", "tiny", "-dtype", dt, "-depth", "0", "-modes", "full",
			"-reps", "1", "-prefill", "16", "-decode", "4", "-json"}, &out, &errb)
		require.NoError(t, err, errb.String())
		var m Measurement
		require.NoError(t, json.Unmarshal(bytes.SplitN(out.Bytes(), []byte("\n"), 2)[0], &m), out.String())
		require.Equal(t, dt, m.DType)
		require.Positive(t, m.DecodeTPS)
		weight[dt] = m.Weight
	}
	require.Less(t, weight["q8"], weight["f32"]/3)
	require.Less(t, weight["q4"], weight["q8"])
	var errb bytes.Buffer
	require.Error(t, run(context.Background(), []string{"-dtype", "q3"}, &bytes.Buffer{}, &errb))
}

// TestBenchSyntheticFill: -fill synthetic builds the same caches as a real fill (bytes, batch
// sizes under the budget) and marks its rows; an unknown -fill value is an error.
func TestBenchSyntheticFill(t *testing.T) {
	rows := map[string]map[string]Measurement{}
	for _, fill := range []string{"real", "synthetic"} {
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{"-shape", "tiny", "-depth", "600", "-reps", "1", "-prefill", "16",
			"-decode", "4", "-kv-budget", "4MiB", "-kv", "f32,q8", "-fill", fill, "-json"}, &out, &errb)
		require.NoError(t, err, errb.String())
		rows[fill] = map[string]Measurement{}
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			var m Measurement
			require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
			require.Equal(t, fill, m.Fill)
			rows[fill][fmt.Sprintf("%s/%s/%d", m.Mode, m.KVType, m.Batch)] = m
		}
	}
	require.Len(t, rows["synthetic"], len(rows["real"]))
	for k, r := range rows["real"] {
		s, ok := rows["synthetic"][k]
		require.True(t, ok, k)
		require.Equal(t, r.KVBytes, s.KVBytes, k)
	}
	require.ErrorContains(t, run(context.Background(), []string{"-fill", "fast"}, &bytes.Buffer{}, &bytes.Buffer{}), `-fill "fast"`)
}

// TestServeTiny runs -serve on the tiny shape: every request completes under the budget in
// both modes and the JSON carries the figures. Speeds are not asserted.
func TestServeTiny(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"-shape", "tiny", "-serve", "5", "-serve-prompt", "1200",
		"-serve-max-tokens", "6", "-serve-budget", "2.5", "-serve-arrival", "poisson:200", "-json"}, &out, &errb)
	require.NoError(t, err, errb.String())
	var ms []ServeMeasurement
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var m ServeMeasurement
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		ms = append(ms, m)
	}
	require.Len(t, ms, 2)
	for _, m := range ms {
		require.Equal(t, int64(5), m.CompletedReqs, m.Mode)
		require.Equal(t, int64(5*6), m.Generated, m.Mode)
		require.LessOrEqual(t, m.PeakReserved, m.Budget, m.Mode)
		require.LessOrEqual(t, m.PeakKV, m.Budget, m.Mode)
		require.Positive(t, m.DecodeTPS, m.Mode)
		require.Positive(t, m.TTFTP50S, m.Mode)
		require.LessOrEqual(t, m.TTFTP50S, m.TTFTP99S, m.Mode)
		require.GreaterOrEqual(t, m.PeakRunning, 2, m.Mode) // 2.5 full estimates admit two at once
	}
	require.Equal(t, "full", ms[0].Mode)
	require.Equal(t, "hybrid", ms[1].Mode)
	require.Less(t, ms[1].PeakKV, ms[0].PeakKV) // Test mode's streaming layers hold less
}
