package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/serve"
)

// serveConfig is the -serve benchmark: requests through a serve.Engine under one KV budget.
type serveConfig struct {
	requests  int     // -serve
	prompt    int     // -serve-prompt: tokens per prompt
	maxTokens int     // -serve-max-tokens
	rate      float64 // requests per second of a Poisson stream (0: all arrive together)
	budgetX   float64 // -serve-budget: the budget in full-attention estimates of one request
	stepTok   int     // -serve-step-tokens
	// interleave runs the modes at once, their engines taking turns step by step (one
	// serve.WithStepLock), and times each by its own stepping time (Stats.Busy), so both see
	// the same ambient load.
	interleave bool
}

// ServeMeasurement is one line of -serve -json output.
type ServeMeasurement struct {
	Shape         string  `json:"shape"`
	DType         string  `json:"dtype"`
	KVType        string  `json:"kv_type"`
	Mode          string  `json:"mode"`
	Requests      int     `json:"requests"`
	Prompt        int     `json:"prompt_tokens"`
	MaxTokens     int     `json:"max_tokens"`
	Arrival       string  `json:"arrival"`
	Budget        int64   `json:"kv_budget"`
	Generated     int64   `json:"generated_tokens"`
	DecodeTPS     float64 `json:"decode_tps"` // generated tokens / time from the first token to the last
	DecodeWallS   float64 `json:"decode_wall_s"`
	DecodeBusyS   float64 `json:"decode_busy_s"` // the engine's own stepping time in that span
	Interleaved   bool    `json:"interleaved"`   // decode_tps and TTFT are by stepping time
	TotalS        float64 `json:"total_s"`
	TTFTP50S      float64 `json:"ttft_p50_s"`
	TTFTP99S      float64 `json:"ttft_p99_s"`
	PeakKV        int64   `json:"peak_kv_bytes"` // most KV bytes held after any step
	PeakRunning   int     `json:"peak_running"`
	PeakReserved  int64   `json:"peak_reserved_bytes"`
	FullEstimate  int64   `json:"full_estimate_bytes"` // one request's full-attention estimate
	CompletedReqs int64   `json:"completed"`
}

// parseArrival reads -serve-arrival: "together" or "poisson:RATE" (requests per second).
func parseArrival(s string) (float64, error) {
	if s == "together" {
		return 0, nil
	}
	r, ok := strings.CutPrefix(s, "poisson:")
	if !ok {
		return 0, fmt.Errorf("%q: want together or poisson:RATE", s)
	}
	v, err := strconv.ParseFloat(r, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q: the rate must be a positive number of requests per second", s)
	}
	return v, nil
}

// serveBench submits sc.requests random prompts to an engine per mode (full: full attention;
// hybrid: Test mode with its defaults) under the same budget, sc.budgetX full-attention
// estimates of one request, and reports aggregate decode speed, time to first token and KV.
func serveBench(ctx context.Context, c config, sc serveConfig, m *model.Model, stdout, stderr io.Writer) error {
	cfg := m.Config()
	kv := c.kvs[0]
	worst := sc.prompt + sc.maxTokens
	shape := kvcache.Shape{KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim}
	est := kvcache.Estimate(shape, make([]kvcache.Policy, cfg.NumLayers), worst, kvcache.WithType(kv, kv))
	budget := int64(sc.budgetX * float64(est))
	rng := rand.New(rand.NewPCG(c.seed, 3))
	prompts := make([][]int32, sc.requests)
	arrive := make([]time.Duration, sc.requests)
	var at time.Duration
	for i := range prompts {
		prompts[i] = make([]int32, sc.prompt)
		for j := range prompts[i] {
			prompts[i][j] = int32(rng.IntN(cfg.VocabSize))
		}
		if sc.rate > 0 {
			at += time.Duration(rng.ExpFloat64() / sc.rate * float64(time.Second))
		}
		arrive[i] = at
	}
	arrival := "together"
	if sc.rate > 0 {
		arrival = fmt.Sprintf("poisson:%g", sc.rate)
	}
	if !c.asJSON {
		fmt.Fprintf(stdout, "%-6s %4s %6s %5s %-14s %12s %10s %9s %9s %9s %13s %7s\n", "mode", "reqs", "prompt", "max",
			"arrival", "budget", "decode t/s", "wall s", "ttft p50", "ttft p99", "peak kv", "peak n")
	}
	meas := make([]ServeMeasurement, len(c.modes))
	errs := make([]error, len(c.modes))
	var lock sync.Locker
	if sc.interleave {
		lock = new(sync.Mutex)
	}
	var wg sync.WaitGroup
	for i, mode := range c.modes {
		sess := []model.SessionOption{model.WithKV(kv), model.WithMaxContext(min(cfg.MaxPositions, worst))}
		if mode == "hybrid" {
			sess = append(sess, model.TestMode())
		} else {
			sess = append(sess, model.FullAttention())
		}
		meas[i] = ServeMeasurement{Shape: c.shape, DType: c.dtype, KVType: kv.String(), Mode: mode, Requests: sc.requests,
			Prompt: sc.prompt, MaxTokens: sc.maxTokens, Arrival: arrival, Budget: budget, FullEstimate: est, Interleaved: sc.interleave}
		run := func() {
			if err := serveRun(ctx, m, sc, sess, prompts, arrive, lock, &meas[i], stderr); err != nil {
				errs[i] = fmt.Errorf("-serve %s: %w", mode, err)
			}
		}
		if !sc.interleave {
			run()
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); run() }()
	}
	wg.Wait()
	for i, mode := range c.modes {
		if errs[i] != nil {
			return errs[i]
		}
		meas := meas[i]
		if c.asJSON {
			b, _ := json.Marshal(meas)
			fmt.Fprintln(stdout, string(b))
			continue
		}
		span := meas.DecodeWallS
		if sc.interleave {
			span = meas.DecodeBusyS
		}
		fmt.Fprintf(stdout, "%-6s %4d %6d %5d %-14s %12d %10.2f %9.1f %9.1f %9.1f %13d %7d\n", mode, sc.requests, sc.prompt,
			sc.maxTokens, arrival, budget, meas.DecodeTPS, span, meas.TTFTP50S, meas.TTFTP99S, meas.PeakKV, meas.PeakRunning)
	}
	return nil
}

// serveRun runs one mode's requests and fills meas.
func serveRun(ctx context.Context, m *model.Model, sc serveConfig, sess []model.SessionOption, prompts [][]int32,
	arrive []time.Duration, lock sync.Locker, meas *ServeMeasurement, stderr io.Writer) error {
	opts := []serve.Option{serve.WithKVBudget(meas.Budget), serve.WithMaxBatch(sc.requests), serve.WithQueue(sc.requests),
		serve.WithStepLock(lock)}
	if sc.stepTok > 0 {
		opts = append(opts, serve.WithStepTokens(sc.stepTok))
	}
	e, err := serve.New(m, opts...)
	if err != nil {
		return err
	}
	defer e.Close()
	var mu sync.Mutex
	var first, last time.Time
	var firstBusy, lastBusy time.Duration
	var generated int64
	peakRunning := 0
	ttft := make([]time.Duration, len(prompts))
	errs := make([]error, len(prompts))
	t0 := time.Now()
	stopProgress := progress(e, meas.Mode, t0, stderr)
	defer stopProgress()
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Until(t0.Add(arrive[i]))):
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			sent, sentBusy := time.Now(), e.Stats().Busy
			stream := func(tok model.Token) error {
				if tok.ID < 0 {
					return nil
				}
				now, st := time.Now(), e.Stats()
				mu.Lock()
				defer mu.Unlock()
				if tok.Index == 0 {
					ttft[i] = now.Sub(sent)
					if sc.interleave {
						ttft[i] = st.Busy - sentBusy
					}
				}
				if first.IsZero() {
					first, firstBusy = now, st.Busy
				}
				last, lastBusy = now, st.Busy
				generated++
				peakRunning = max(peakRunning, st.Running)
				return nil
			}
			_, errs[i] = e.Submit(ctx, serve.Request{Tokens: p, MaxTokens: sc.maxTokens, IgnoreEOS: true, Session: sess, Stream: stream})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
	}
	st := e.Stats()
	meas.TotalS = time.Since(t0).Seconds()
	meas.Generated, meas.PeakKV, meas.PeakRunning, meas.CompletedReqs = generated, st.KVPeak, peakRunning, st.Completed
	meas.PeakReserved = st.KVPeakReserved
	meas.DecodeWallS, meas.DecodeBusyS = last.Sub(first).Seconds(), (lastBusy - firstBusy).Seconds()
	span := meas.DecodeWallS
	if sc.interleave {
		span = meas.DecodeBusyS
	}
	if span > 0 {
		meas.DecodeTPS = float64(generated) / span
	}
	slices.Sort(ttft)
	meas.TTFTP50S = quantile(ttft, 0.50).Seconds()
	meas.TTFTP99S = quantile(ttft, 0.99).Seconds()
	return nil
}

// progress prints the engine's state to stderr every 30 s until the returned func is called.
func progress(e *serve.Engine, mode string, t0 time.Time, stderr io.Writer) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				st := e.Stats()
				fmt.Fprintf(stderr, "bench: serve %s %v (busy %v): running %d waiting %d completed %d generated %d kv %d reserved %d\n",
					mode, time.Since(t0).Round(time.Second), st.Busy.Round(time.Second), st.Running, st.Waiting, st.Completed,
					st.GeneratedTokens, st.KVBytes, st.KVReserved)
			}
		}
	}()
	return func() { close(done) }
}

// quantile returns the q-quantile of sorted durations (nearest rank; 0 for none).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
