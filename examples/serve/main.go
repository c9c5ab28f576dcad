// Command serve is an OpenAI-compatible HTTP server over one model, batching concurrent
// requests in one engine (package serve) under a KV-cache budget.
//
//	go run ./examples/serve -model DIR -addr 127.0.0.1:8080 -kv-budget 4GiB -mode test
//
// Endpoints: POST /v1/completions and POST /v1/chat/completions (JSON or, with "stream":
// true, server-sent events ending in `data: [DONE]`), GET /v1/models, GET /healthz (200 once
// the model is loaded, 503 before) and GET /metrics (Prometheus). Errors come in OpenAI's
// shape {"error": {"message", "type", "param", "code"}}: 400 for malformed or unsupported
// fields and prompts longer than the context or the KV budget, 404 for an unknown model, 429
// when the queue is full, 503 while loading or shutting down.
//
// A request may choose its attention mode with the extension field "lighttransfer":
//
//	"lighttransfer": {"mode": "test", "keep": 0.5, "sink": 4, "window": 1020, "last": 32, "kv": "q8"}
//	"lighttransfer": {"mode": "fixed", "lazy": [1, 3]}
//
// Fields left out keep the server's flags (-mode, -keep, -sink, -window, -last, -lazy, -plan,
// -kv). On SIGINT or SIGTERM the server stops accepting connections, lets the requests in
// flight and in the queue finish for at most -shutdown-timeout (cancelling, and answering with
// an error, whatever is left then) and exits 0. Without -model it serves the small model in
// the repository's testdata/stories260K (run it from the repository root).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lighttransfer/lighttransfer-go/internal/cliflags"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// defaultModel is the small real model in the repository's testdata, relative to the
// repository root.
const defaultModel = "testdata/stories260K"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }() // a second signal ends the process at once
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	dir, addr       string
	budget          int64
	maxBatch, queue int
	stepTokens      int
	threads         int
	weights         model.WeightFormat
	shutdownTimeout time.Duration
	attn            cliflags.Attention
	verbose         bool
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.dir, "model", "", "Hugging Face checkpoint `directory` (default "+defaultModel+" when present)")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "`host:port` to listen on")
	budget := fs.String("kv-budget", "", "KV cache budget in bytes or KiB/MiB/GiB, e.g. 4GiB (default: unlimited)")
	fs.IntVar(&c.maxBatch, "max-batch", 16, "most sequences decoding at once")
	fs.IntVar(&c.queue, "queue", 256, "most requests waiting for admission; past it requests get 429")
	fs.IntVar(&c.stepTokens, "step-tokens", 0, "most tokens one engine step forwards, decodes and prefill chunks together (0: the engine's default)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 60*time.Second, "on SIGINT/SIGTERM, how long in-flight requests may take to finish")
	fs.IntVar(&c.threads, "threads", 0, "threads (0: GOMAXPROCS)")
	weights := fs.String("weights", "auto", "weight format: auto, f32, bf16, q8 or q4")
	fs.BoolVar(&c.verbose, "v", false, "log loading details to stderr")
	c.attn.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.attn.Visit(fs); err != nil {
		return nil, err
	}
	if _, err := c.attn.SessionOptions(); err != nil { // checked once here, reused per request
		return nil, err
	}
	if *budget != "" {
		b, err := cliflags.ParseBytes(*budget)
		if err != nil {
			return nil, fmt.Errorf("-kv-budget: %w", err)
		}
		c.budget = b
	}
	var err error
	if c.weights, err = model.ParseWeightFormat(*weights); err != nil {
		return nil, fmt.Errorf("-weights: %w", err)
	}
	switch {
	case c.maxBatch < 1:
		return nil, fmt.Errorf("-max-batch %d: must be at least 1", c.maxBatch)
	case c.queue < 0:
		return nil, fmt.Errorf("-queue %d: must be >= 0", c.queue)
	case c.stepTokens < 0:
		return nil, fmt.Errorf("-step-tokens %d: must be >= 0", c.stepTokens)
	case c.shutdownTimeout < 0:
		return nil, fmt.Errorf("-shutdown-timeout %v: must be >= 0", c.shutdownTimeout)
	}
	if c.dir == "" {
		if _, err := os.Stat(defaultModel); err != nil {
			return nil, errors.New("no -model given and " + defaultModel + " is not here (run from the repository " +
				"root for the small model it ships), or pass -model DIR with a Hugging Face checkpoint " +
				"(config.json, *.safetensors, tokenizer.json)")
		}
		c.dir = defaultModel
	}
	return c, nil
}

// run serves until ctx ends, then shuts down gracefully. It prints "listening on
// http://ADDR" to stdout once the port is open (the model still loading: /healthz answers
// 503), then "serving MODEL" once requests are answered; errors and the shutdown summary go to
// stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	id := filepath.Base(filepath.Clean(c.dir))
	srv := newServer(id, c.attn)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())

	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	m, err := model.Load(ctx, c.dir, model.WithThreads(c.threads), model.WithLogger(logger), model.WithWeightFormat(c.weights))
	if err != nil {
		hs.Close()
		return err
	}
	defer m.Close()
	eng, err := newEngine(m, c)
	if err != nil {
		hs.Close()
		return err
	}
	defer eng.Close()
	srv.setReady(eng)
	fmt.Fprintf(stdout, "serving %s\n", id)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(stderr, "serve: shutting down, letting requests in flight finish (at most %v)\n", c.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	httpErr := hs.Shutdown(sctx) // closes the listener, waits for the handlers
	engErr := eng.Shutdown(sctx) // nothing left when the handlers are done; else cancels what is
	if httpErr != nil {
		// Timed out: the engine has cancelled what was left and the handlers answer with errors.
		grace, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if hs.Shutdown(grace) != nil {
			hs.Close()
		}
	}
	st := eng.Stats()
	fmt.Fprintf(stderr, "serve: stopped: %d requests completed, %d canceled, %d rejected\n", st.Completed, st.Canceled, st.Rejected)
	if engErr != nil && !errors.Is(engErr, context.DeadlineExceeded) {
		return engErr
	}
	return nil
}
