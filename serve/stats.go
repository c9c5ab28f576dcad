package serve

import (
	"slices"
	"time"
)

// Stats is a snapshot of an Engine's state and recent figures.
type Stats struct {
	Running int // admitted requests (prefilling or decoding)
	Waiting int // queued requests

	KVBytes    int64 // KV cache bytes the running sequences held after the last step
	KVReserved int64 // bytes charged against the budget: each running sequence's worst case
	KVPeak     int64 // the most KVBytes seen after any step
	// KVPeakReserved is the most KVReserved seen: never above a non-zero KVBudget.
	KVPeakReserved int64
	KVBudget       int64 // the budget (0: unlimited)

	// DecodeTokensPerSecond is the tokens generated per second of stepping over the last
	// statsWindow steps (0 before any).
	DecodeTokensPerSecond float64
	// TimeToFirstTokenP50 and P99 are percentiles of the time from Submit to the first
	// generated token (queueing included) over the last statsWindow requests that got one.
	TimeToFirstTokenP50, TimeToFirstTokenP99 time.Duration

	Completed int64 // requests finished normally (length, EOS, stop, callback, context)
	Canceled  int64 // requests ended by their context or by Close
	Failed    int64 // requests ended by another error (a stream callback's, the model's)
	Rejected  int64 // Submits refused with ErrOverloaded or ErrTooLarge

	Steps           int64 // forward steps run
	GeneratedTokens int64 // tokens generated in all
	// Busy is the time spent in forward steps so far, the step in flight included (waits for
	// WithStepLock's lock excluded).
	Busy time.Duration
}

// statsWindow is how many recent steps and first-token times Stats summarises.
const statsWindow = 256

// statsState is what the Engine records for Stats (guarded by Engine.mu).
type statsState struct {
	completed, canceled, failed, rejected int64
	steps, generated                      int64
	overCharge                            int64 // sessions seen holding more than their charge (a bug)
	busy                                  time.Duration
	stepStart                             time.Time // start of the step in flight (zero: none)
	held, peakHeld, peakReserved          int64

	stepDur []time.Duration // ring of the last steps' durations
	stepTok []int           // and tokens generated
	ttfts   []time.Duration // ring of the last first-token times
	si, ti  int
}

func (s *statsState) init() {
	s.stepDur = make([]time.Duration, 0, statsWindow)
	s.stepTok = make([]int, 0, statsWindow)
	s.ttfts = make([]time.Duration, 0, statsWindow)
}

// step records one step that took d, generated n tokens and left held bytes in the caches.
func (s *statsState) step(d time.Duration, n int, held int64) {
	s.steps++
	s.busy += d
	s.generated += int64(n)
	s.held = held
	s.peakHeld = max(s.peakHeld, held)
	if len(s.stepDur) < statsWindow {
		s.stepDur = append(s.stepDur, d)
		s.stepTok = append(s.stepTok, n)
		return
	}
	s.stepDur[s.si], s.stepTok[s.si] = d, n
	s.si = (s.si + 1) % statsWindow
}

// ttft records one time to first token.
func (s *statsState) ttft(d time.Duration) {
	if len(s.ttfts) < statsWindow {
		s.ttfts = append(s.ttfts, d)
		return
	}
	s.ttfts[s.ti] = d
	s.ti = (s.ti + 1) % statsWindow
}

// Stats returns a snapshot of the engine's state and recent figures.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &e.st
	out := Stats{Running: len(e.running), Waiting: len(e.waiting), KVBytes: s.held, KVReserved: e.reserved,
		KVPeak: s.peakHeld, KVPeakReserved: s.peakReserved, KVBudget: e.o.budget, Completed: s.completed, Canceled: s.canceled,
		Failed: s.failed, Rejected: s.rejected, Steps: s.steps, GeneratedTokens: s.generated}
	out.Busy = s.busy
	if !s.stepStart.IsZero() {
		out.Busy += time.Since(s.stepStart)
	}
	var d time.Duration
	var n int
	for i := range s.stepDur {
		d += s.stepDur[i]
		n += s.stepTok[i]
	}
	if d > 0 {
		out.DecodeTokensPerSecond = float64(n) / d.Seconds()
	}
	if len(s.ttfts) > 0 {
		t := slices.Clone(s.ttfts)
		slices.Sort(t)
		out.TimeToFirstTokenP50 = percentile(t, 0.50)
		out.TimeToFirstTokenP99 = percentile(t, 0.99)
	}
	return out
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
