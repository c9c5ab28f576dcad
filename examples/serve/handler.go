package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	randv2 "math/rand/v2"

	"github.com/lighttransfer/lighttransfer-go/internal/cliflags"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/serve"
)

// server is the HTTP side of the serve command: it answers the OpenAI-compatible endpoints
// by submitting jobs to an engine. Until setReady it answers 503 (and /healthz says loading).
type server struct {
	id      string             // the model id, the model directory's base name
	created int64              // unix seconds the server started, reported as the model's creation
	attn    cliflags.Attention // the attention flags, defaults of every request
	eng     atomic.Pointer[engineBox]
	metrics *metrics
	mux     *http.ServeMux
}

// engineBox holds the engine behind an atomic pointer.
type engineBox struct{ e engine }

// newServer returns a server for the model id with the given attention defaults; it answers
// 503 until setReady.
func newServer(id string, attn cliflags.Attention) *server {
	s := &server{id: id, created: time.Now().Unix(), attn: attn, mux: http.NewServeMux()}
	s.metrics = newMetrics(s.stats)
	s.handle("POST /v1/completions", "completions", s.completions)
	s.handle("POST /v1/chat/completions", "chat", s.chat)
	s.handle("GET /v1/models", "models", s.models)
	s.handle("GET /v1/models/{id}", "models", s.model)
	s.handle("GET /healthz", "healthz", s.healthz)
	s.mux.Handle("GET /metrics", s.metrics.handler())
	s.handle("/", "other", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "unknown_url",
			Message: fmt.Sprintf("unknown request URL: %s %s", r.Method, r.URL.Path)})
	})
	return s
}

// setReady makes the server answer with e.
func (s *server) setReady(e engine) { s.eng.Store(&engineBox{e}) }

// engine returns the engine, or nil while loading.
func (s *server) engine() engine {
	if b := s.eng.Load(); b != nil {
		return b.e
	}
	return nil
}

// stats returns the engine's Stats and whether there is an engine.
func (s *server) stats() (serve.Stats, bool) {
	if e := s.engine(); e != nil {
		return e.Stats(), true
	}
	return serve.Stats{}, false
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handle registers h under pattern, counting requests and timing them under the endpoint label.
func (s *server) handle(pattern, endpoint string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		code := sw.status
		switch {
		case r.Context().Err() != nil && code == 0:
			code = 499 // the client went away before an answer
		case code == 0:
			code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
		s.metrics.duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	})
}

// statusWriter records the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's Flush.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers e in OpenAI's error shape.
func writeError(w http.ResponseWriter, e *apiError) { writeJSON(w, e.Status, e) }

// notReady answers 503 while the model loads.
func notReady(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeError(w, &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "loading",
		Message: "the model is still loading"})
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.engine() == nil {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "model": s.id})
}

func (s *server) modelObject() modelObject {
	return modelObject{ID: s.id, Object: "model", Created: s.created, OwnedBy: "lighttransfer"}
}

func (s *server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", []modelObject{s.modelObject()}})
}

func (s *server) model(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != s.id {
		writeError(w, s.unknownModel(id))
		return
	}
	writeJSON(w, http.StatusOK, s.modelObject())
}

func (s *server) unknownModel(id string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
		Message: fmt.Sprintf("the model %q does not exist; this server has %q", id, s.id)}
}

func (s *server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := decode(r, w, &req); err != nil {
		writeError(w, err)
		return
	}
	j, err := completionJob(&req, s.attn)
	if err == nil && req.Model != s.id {
		err = s.unknownModel(req.Model)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	s.run(w, r, j)
}

func (s *server) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := decode(r, w, &req); err != nil {
		writeError(w, err)
		return
	}
	j, err := chatJob(&req, s.attn)
	if err == nil && req.Model != s.id {
		err = s.unknownModel(req.Model)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	s.run(w, r, j)
}

// engineError maps an error of Submit onto an HTTP answer; nil when the client went away
// (nobody to answer).
func engineError(ctx context.Context, err error, chat bool) *apiError {
	prompt := "prompt"
	if chat {
		prompt = "messages"
	}
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, serve.ErrOverloaded):
		return &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full",
			Message: "the server's request queue is full; retry later: " + err.Error()}
	case errors.Is(err, serve.ErrClosed):
		return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "shutting_down",
			Message: "the server is shutting down: " + err.Error()}
	case errors.Is(err, model.ErrContext):
		return badRequest(prompt, "context_length_exceeded", "%s: %v", prompt, err)
	case errors.Is(err, serve.ErrTooLarge):
		return badRequest(prompt, "request_too_large", "%s: the request's KV cache does not fit the server's KV budget: %v", prompt, err)
	case errors.Is(err, model.ErrOption):
		return badRequest("", "invalid_value", "%v", err)
	case errors.Is(err, tokenizer.ErrNoTemplate):
		return badRequest("messages", "no_chat_template", "this model has no chat template; use /v1/completions: %v", err)
	case errors.Is(err, model.ErrToken):
		return badRequest(prompt, "invalid_value", "%s: %v", prompt, err)
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: err.Error()}
}

// run submits j and answers, as one JSON response or as an event stream.
func (s *server) run(w http.ResponseWriter, r *http.Request, j *job) {
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	e := s.engine()
	if e == nil {
		notReady(w)
		return
	}
	if j.stream {
		s.stream(w, r, e, j)
		return
	}
	res, err := e.Submit(r.Context(), j.req)
	if err != nil {
		if ae := engineError(r.Context(), err, j.chat); ae != nil {
			writeError(w, ae)
		}
		return
	}
	s.metrics.tokens(res)
	finish := finishReason(res.Finish)
	created := time.Now().Unix()
	if j.chat {
		writeJSON(w, http.StatusOK, chatCompletion{ID: newID("chatcmpl-"), Object: "chat.completion", Created: created,
			Model: s.id, Usage: usageOf(res), Choices: []chatChoice{{
				Message: &chatMessageOut{Role: "assistant", Content: &res.Text}, FinishReason: &finish}}})
		return
	}
	writeJSON(w, http.StatusOK, completion{ID: newID("cmpl-"), Object: "text_completion", Created: created,
		Model: s.id, Usage: usageOf(res), Choices: []completionChoice{{Text: res.Text, FinishReason: &finish}}})
}

// pieces is an unbounded queue of text from the engine's stream callback to the handler, so a
// slow client never stalls the engine's step loop.
type pieces struct {
	mu      sync.Mutex
	texts   []string
	started bool          // the callback ran at least once
	ready   chan struct{} // signalled (capacity 1) after each push
}

func (p *pieces) push(t model.Token) error {
	p.mu.Lock()
	p.started = true
	if t.Text != "" {
		p.texts = append(p.texts, t.Text)
	}
	p.mu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default:
	}
	return nil
}

func (p *pieces) take() (texts []string, started bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	texts, p.texts = p.texts, nil
	return texts, p.started
}

// sse writes server-sent events, each `data: JSON` and a blank line, flushing after each.
type sse struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error // the first write error: the client is gone
}

func newSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, rc: http.NewResponseController(w)}
}

// send writes v as one event (a []byte is written as it is).
func (e *sse) send(v any) {
	if e.err != nil {
		return
	}
	b, ok := v.([]byte)
	if !ok {
		if b, e.err = json.Marshal(v); e.err != nil {
			return
		}
	}
	if _, e.err = fmt.Fprintf(e.w, "data: %s\n\n", b); e.err == nil {
		e.err = e.rc.Flush()
	}
}

// stream runs j with an event stream: one chunk per piece of text, a last chunk with the
// finish reason, a usage chunk when asked, then `data: [DONE]`. The status is written with the
// first piece, so a request refused before it starts (queue full, prompt too long) still gets
// its HTTP error; an error after that ends the stream with an error event.
func (s *server) stream(w http.ResponseWriter, r *http.Request, e engine, j *job) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	q := &pieces{ready: make(chan struct{}, 1)}
	j.req.Stream = q.push
	type outcome struct {
		res model.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := e.Submit(ctx, j.req)
		done <- outcome{res, err}
	}()

	id, created := newID("cmpl-"), time.Now().Unix()
	if j.chat {
		id = newID("chatcmpl-")
	}
	chunk := func(text *string, finish *string, u *usage) any {
		if j.chat {
			c := chatCompletion{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.id, Usage: u,
				Choices: []chatChoice{{Delta: &chatMessageOut{Content: text}, FinishReason: finish}}}
			if u != nil {
				c.Choices = []chatChoice{}
			}
			return c
		}
		c := completion{ID: id, Object: "text_completion", Created: created, Model: s.id, Usage: u,
			Choices: []completionChoice{{FinishReason: finish}}}
		if text != nil {
			c.Choices[0].Text = *text
		}
		if u != nil {
			c.Choices = []completionChoice{}
		}
		return c
	}
	var out *sse
	start := func() {
		out = newSSE(w)
		if j.chat { // the first chunk names the role
			empty := ""
			out.send(chatCompletion{ID: id, Object: "chat.completion.chunk", Created: created, Model: s.id,
				Choices: []chatChoice{{Delta: &chatMessageOut{Role: "assistant", Content: &empty}}}})
		}
	}
	flush := func() {
		texts, started := q.take()
		if out == nil && started {
			start()
		}
		for _, t := range texts {
			out.send(chunk(&t, nil, nil))
		}
		if out != nil && out.err != nil {
			cancel() // the client is gone: end the sequence now
		}
	}
	for {
		select {
		case <-q.ready:
			flush()
		case o := <-done:
			flush()
			if o.err != nil {
				ae := engineError(r.Context(), o.err, j.chat)
				switch {
				case ae == nil:
				case out == nil:
					writeError(w, ae)
				default:
					b, _ := ae.MarshalJSON()
					out.send(b)
				}
				return
			}
			if out == nil {
				start()
			}
			s.metrics.tokens(o.res)
			finish := finishReason(o.res.Finish)
			out.send(chunk(nil, &finish, nil))
			if j.includeUsage {
				out.send(chunk(nil, nil, usageOf(o.res)))
			}
			out.send([]byte("[DONE]"))
			return
		}
	}
}

// newID returns prefix followed by 24 random hex digits.
func newID(prefix string) string {
	var b [12]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	return prefix + hex.EncodeToString(b[:])
}

// randomSeed is the seed of a request that gives none.
func randomSeed() uint64 { return randv2.Uint64() }
