package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/serve"
)

// loadCase is one request of the load test.
type loadCase struct {
	chat, stream bool
	prompt       string
	max          int
	want         model.Result
}

// loadCases builds n greedy requests of mixed prompt lengths (1 to 60 words of the story),
// generation lengths (8 to 203 tokens), endpoints and streaming, with their sequential
// references from the model's own Generate and Chat.
func loadCases(t *testing.T, m *model.Model, n int) []loadCase {
	t.Helper()
	story, err := os.ReadFile(testutil.Testdata(t, "stories260K", "story.txt"))
	require.NoError(t, err)
	words := strings.Fields(string(story))
	cases := make([]loadCase, n)
	for i := range cases {
		c := &cases[i]
		c.chat, c.stream = i%3 == 2, i%2 == 1
		c.prompt = strings.Join(words[:1+(i*37)%60], " ")
		c.max = 8 + (i*53)%196
		req := serve.Request{Prompt: c.prompt, MaxTokens: c.max}
		if c.chat {
			req = serve.Request{Messages: []tokenizer.Message{{Role: "user", Content: c.prompt}}, MaxTokens: c.max}
		}
		c.want = reference(t, m, req)
	}
	return cases
}

// do sends c through the client and returns the generated text, finish reason and usage.
func (h *harness) do(ctx context.Context, c loadCase) (text, finish string, completion int64, err error) {
	switch {
	case c.chat && c.stream:
		s := h.client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: h.id,
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(c.prompt)},
			MaxTokens: openai.Int(int64(c.max)), Temperature: openai.Float(0),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
		var acc openai.ChatCompletionAccumulator
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if s.Err() != nil || len(acc.Choices) != 1 {
			return "", "", 0, fmt.Errorf("stream: %v (%d choices)", s.Err(), len(acc.Choices))
		}
		return acc.Choices[0].Message.Content, acc.Choices[0].FinishReason, acc.Usage.CompletionTokens, nil
	case c.chat:
		r, err := h.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: h.id,
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(c.prompt)},
			MaxTokens: openai.Int(int64(c.max)), Temperature: openai.Float(0)})
		if err != nil {
			return "", "", 0, err
		}
		return r.Choices[0].Message.Content, r.Choices[0].FinishReason, r.Usage.CompletionTokens, nil
	case c.stream:
		s := h.client.Completions.NewStreaming(ctx, openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
			Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(c.prompt)},
			MaxTokens: openai.Int(int64(c.max)), Temperature: openai.Float(0),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
		var b strings.Builder
		for s.Next() {
			ch := s.Current()
			for _, x := range ch.Choices {
				b.WriteString(x.Text)
				if x.FinishReason != "" {
					finish = string(x.FinishReason)
				}
			}
			if ch.Usage.TotalTokens > 0 {
				completion = ch.Usage.CompletionTokens
			}
		}
		return b.String(), finish, completion, s.Err()
	}
	r, err := h.client.Completions.New(ctx, openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(c.prompt)},
		MaxTokens: openai.Int(int64(c.max)), Temperature: openai.Float(0)})
	if err != nil {
		return "", "", 0, err
	}
	return r.Choices[0].Text, string(r.Choices[0].FinishReason), r.Usage.CompletionTokens, nil
}

// TestLoad: 64 concurrent greedy requests of mixed lengths over loopback, half of them
// streamed, a third of them chats, through one engine (16 running at most, the rest queued):
// every one completes with exactly the sequential model.Generate / model.Chat output, and the
// engine ran fewer steps than it generated tokens (the requests shared steps).
func TestLoad(t *testing.T) {
	const n = 64
	h := newHarness(t, chatDir(t), realEngine())
	cases := loadCases(t, h.m, n)
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range cases {
		wg.Go(func() {
			t0 := time.Now()
			c := cases[i]
			text, finish, tokens, err := h.do(context.Background(), c)
			lat[i] = time.Since(t0)
			switch {
			case err != nil:
				errs[i] = err
			case text != c.want.Text:
				errs[i] = fmt.Errorf("text %q, want %q", text, c.want.Text)
			case finish != finishReason(c.want.Finish):
				errs[i] = fmt.Errorf("finish %q, want %q", finish, finishReason(c.want.Finish))
			case tokens != int64(c.want.GeneratedTokens):
				errs[i] = fmt.Errorf("%d completion tokens, want %d", tokens, c.want.GeneratedTokens)
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("request %d (chat %v, stream %v, max %d): %v", i, cases[i].chat, cases[i].stream, cases[i].max, err)
		}
	}
	st := h.eng.Stats()
	require.Equal(t, int64(n), st.Completed)
	require.Zero(t, st.Canceled+st.Failed+st.Rejected)
	require.Zero(t, st.Running+st.Waiting)
	require.Less(t, st.Steps, st.GeneratedTokens, "the requests were batched")
	slices.Sort(lat)
	t.Logf("load: %d requests, %d errors, %d lost; latency p50 %v, p99 %v, max %v; wall %v; %d tokens in %d steps",
		n, failed, n-int(st.Completed), lat[n/2], lat[(n*99)/100], lat[n-1], wall, st.GeneratedTokens, st.Steps)
}

// blocker is a request submitted straight to the engine whose stream callback holds the
// engine's loop at its first token until released: with it the tests fix what is running and
// what is queued.
type blocker struct {
	held, release chan struct{}
	done          chan error
}

func block(t *testing.T, e engine) *blocker {
	t.Helper()
	b := &blocker{held: make(chan struct{}), release: make(chan struct{}), done: make(chan error, 1)}
	var once sync.Once
	go func() {
		_, err := e.Submit(context.Background(), serve.Request{Prompt: "Once", MaxTokens: 4, Stream: func(model.Token) error {
			once.Do(func() { close(b.held); <-b.release })
			return nil
		}})
		b.done <- err
	}()
	<-b.held
	return b
}

func (b *blocker) unblock(t *testing.T) {
	t.Helper()
	close(b.release)
	require.NoError(t, <-b.done)
}

// TestOverload: with one sequence running and the queue (1) full, a request gets 429 in
// OpenAI's shape, streamed or not; the queued one completes once the engine moves on.
func TestOverload(t *testing.T) {
	h := newHarness(t, testutil.Testdata(t, "stories260K"), realEngine(serve.WithMaxBatch(1), serve.WithQueue(1)))
	b := block(t, h.eng)
	queued := make(chan error, 1)
	go func() {
		_, err := h.client.Completions.New(context.Background(), openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")}, MaxTokens: openai.Int(10)})
		queued <- err
	}()
	waitFor(t, "a queued request", func() bool { return h.eng.Stats().Waiting == 1 })

	params := openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Lily")}, MaxTokens: openai.Int(10)}
	_, err := h.client.Completions.New(context.Background(), params)
	e := apiErr(t, err)
	require.Equal(t, http.StatusTooManyRequests, e.StatusCode)
	require.Equal(t, "queue_full", e.Code)
	require.Equal(t, "rate_limit_error", e.Type)
	s := h.client.Completions.NewStreaming(context.Background(), params)
	require.False(t, s.Next())
	require.Equal(t, http.StatusTooManyRequests, apiErr(t, s.Err()).StatusCode)
	require.Equal(t, int64(2), h.eng.Stats().Rejected)

	b.unblock(t)
	require.NoError(t, <-queued)
	require.Equal(t, 1.0, metricValue(t, h.ts.URL, `lighttransfer_serve_http_requests_total{code="200",endpoint="completions"}`))
	require.Equal(t, 2.0, metricValue(t, h.ts.URL, `lighttransfer_serve_http_requests_total{code="429",endpoint="completions"}`))
}

// TestTooLarge: a request whose worst-case KV exceeds the whole budget is a 400.
func TestTooLarge(t *testing.T) {
	h := newHarness(t, testutil.Testdata(t, "stories260K"), realEngine(serve.WithKVBudget(4096)))
	_, err := h.client.Completions.New(context.Background(), openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")}, MaxTokens: openai.Int(100)})
	e := apiErr(t, err)
	require.Equal(t, http.StatusBadRequest, e.StatusCode)
	require.Equal(t, "request_too_large", e.Code)
	require.Equal(t, "prompt", e.Param)
}

// TestDisconnect: a client that goes away, mid-stream or waiting for a JSON answer, cancels
// its sequence: the engine counts it cancelled and frees its slot and bytes, and the other
// request in the batch completes.
func TestDisconnect(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			h := newHarness(t, testutil.Testdata(t, "stories260K"), realEngine())
			ctx, cancel := context.WithCancel(context.Background())
			params := openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
				Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
				MaxTokens: openai.Int(400), Temperature: openai.Float(0)}
			done := make(chan error, 1)
			var b *blocker
			if stream {
				s := h.client.Completions.NewStreaming(ctx, params)
				require.True(t, s.Next(), "%v", s.Err())
				b = block(t, h.eng) // the loop stops with the stream under way
				go func() {
					for s.Next() {
					}
					done <- s.Err()
				}()
			} else {
				b = block(t, h.eng)
				go func() {
					_, err := h.client.Completions.New(ctx, params)
					done <- err
				}()
			}
			waitFor(t, "both requests running", func() bool { return h.eng.Stats().Running == 2 })
			cancel()
			require.Error(t, <-done)
			b.unblock(t)
			waitFor(t, "the cancellation", func() bool {
				st := h.eng.Stats()
				return st.Canceled == 1 && st.Running == 0 && st.KVReserved == 0
			})
			st := h.eng.Stats()
			require.Equal(t, int64(1), st.Completed) // the blocker
			require.Zero(t, st.Failed)
			waitFor(t, "the handler's end", func() bool {
				return metricValue(t, h.ts.URL, `lighttransfer_serve_http_requests_total{code="499",endpoint="completions"}`) == 1 ||
					metricValue(t, h.ts.URL, `lighttransfer_serve_http_requests_total{code="200",endpoint="completions"}`) == 1
			})
		})
	}
}

// syncBuffer is a bytes.Buffer safe for run's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startRun runs the command with args on a free loopback port and returns its base URL, once
// it serves, and a channel with run's error.
func startRun(t *testing.T, ctx context.Context, args ...string) (string, chan error, *syncBuffer) {
	t.Helper()
	var stdout, stderr syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), &stdout, &stderr) }()
	re := regexp.MustCompile(`listening on (http://\S+)`)
	var url string
	waitFor(t, "the server", func() bool {
		select {
		case err := <-errc:
			t.Fatalf("run: %v; stderr: %s", err, stderr.String())
		default:
		}
		m := re.FindStringSubmatch(stdout.String())
		if m != nil && strings.Contains(stdout.String(), "serving ") {
			url = m[1]
			return true
		}
		return false
	})
	return url, errc, &stderr
}

// TestRunShutdown runs the command and sends it the shutdown signal (run's context ends) with
// requests running and queued: it stops accepting connections, every admitted request still
// gets its whole answer, and run returns nil. With a shutdown timeout too short for them, the
// requests left get an error answer (503 or a stream error event), none is dropped silently.
func TestRunShutdown(t *testing.T) {
	dir := chatDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, errc, stderr := startRun(t, ctx, "-model", dir, "-max-batch", "2", "-shutdown-timeout", "60s")

	resp, err := http.Get(url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	h := &harness{id: "stories260K-chat", client: openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("x"), option.WithMaxRetries(0))}
	h.m = loadModel(t, dir)
	cases := loadCases(t, h.m, 6)
	for i := range cases {
		cases[i].max = 300 - 10*i
		req := serve.Request{Prompt: cases[i].prompt, MaxTokens: cases[i].max}
		if cases[i].chat {
			req = serve.Request{Messages: []tokenizer.Message{{Role: "user", Content: cases[i].prompt}}, MaxTokens: cases[i].max}
		}
		cases[i].want = reference(t, h.m, req)
	}
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() {
			text, _, _, err := h.do(context.Background(), c)
			if err == nil && text != c.want.Text {
				err = fmt.Errorf("text %q, want %q", text, c.want.Text)
			}
			errs[i] = err
		})
	}
	count := func(name string) float64 { return max(metricValue(t, url, name), 0) } // absent: 0
	waitFor(t, "all requests in", func() bool {
		return count("lighttransfer_serve_http_requests_in_flight")+
			count(`lighttransfer_serve_http_requests_total{code="200",endpoint="completions"}`)+
			count(`lighttransfer_serve_http_requests_total{code="200",endpoint="chat"}`) == 6
	})
	inFlight, waiting := count("lighttransfer_serve_http_requests_in_flight"), count("lighttransfer_serve_waiting_requests")
	t.Logf("shutdown with %v requests in flight, %v of them queued", inFlight, waiting)
	cancel()
	wg.Wait()
	require.NoError(t, <-errc, stderr.String())
	require.Greater(t, inFlight, 0.0)
	for i, err := range errs {
		require.NoError(t, err, "request %d", i)
	}
	require.Contains(t, stderr.String(), "6 requests completed, 0 canceled")
	_, err = http.Get(url + "/healthz")
	require.Error(t, err, "the listener is closed")

	// Too short a timeout: what is left is cancelled and answered with errors.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	url, errc, stderr = startRun(t, ctx2, "-model", dir, "-max-batch", "1", "-shutdown-timeout", "1ms")
	type answer struct {
		status int
		body   string
		err    error
	}
	answers := make(chan answer, 4)
	for i := range 4 {
		go func() {
			body := fmt.Sprintf(`{"model": "stories260K-chat", "prompt": "Once upon a time", "max_tokens": 480, "stream": %v}`, i%2 == 0)
			resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, string(b), err}
		}()
	}
	waitFor(t, "four requests in", func() bool {
		return count("lighttransfer_serve_http_requests_in_flight")+
			count(`lighttransfer_serve_http_requests_total{code="200",endpoint="completions"}`) == 4
	})
	cancel2()
	require.NoError(t, <-errc, stderr.String())
	for range 4 {
		a := <-answers
		require.NoError(t, a.err)
		switch {
		case a.status == http.StatusServiceUnavailable:
			require.Contains(t, a.body, `"code":"shutting_down"`)
		case a.status == http.StatusOK && strings.HasPrefix(a.body, "data: "):
			require.True(t, strings.HasSuffix(a.body, "data: [DONE]\n\n") || strings.Contains(a.body, `data: {"error":`), a.body)
		default:
			require.Equal(t, http.StatusOK, a.status, a.body) // finished in time
		}
	}
	require.Contains(t, stderr.String(), "canceled")
}

// TestRunFlags: bad flags are errors, before anything listens.
func TestRunFlags(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
	for _, args := range [][]string{
		{"-kv-budget", "0"},
		{"-kv-budget", "lots"},
		{"-max-batch", "0"},
		{"-queue", "-1"},
		{"-step-tokens", "-1"},
		{"-shutdown-timeout", "-1s"},
		{"-mode", "sideways"},
		{"-mode", "fixed"},
		{"-kv", "q3"},
		{"-weights", "f7"},
		{"-addr", "127.0.0.1:99999"},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"-model", dir}, args...), &out, &errb)
		require.Error(t, err, "%v", args)
	}
	var out, errb bytes.Buffer
	require.Error(t, run(context.Background(), []string{"-model", t.TempDir(), "-addr", "127.0.0.1:0"}, &out, &errb), "no checkpoint")
}
