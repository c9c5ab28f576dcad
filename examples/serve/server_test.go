package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/cliflags"
	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/serve"
)

// chatTemplate is a small chat template for stories260K, which ships none.
const chatTemplate = `{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}`

// chatDir returns a copy of stories260K named stories260K-chat whose tokenizer_config.json
// has chatTemplate.
func chatDir(t *testing.T) string {
	t.Helper()
	src := testutil.Testdata(t, "stories260K")
	dir := filepath.Join(t.TempDir(), "stories260K-chat")
	require.NoError(t, os.Mkdir(dir, 0o755))
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		require.NoError(t, testutil.CopyFile(filepath.Join(dir, f), filepath.Join(src, f)))
	}
	cfg, err := json.Marshal(map[string]any{"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>",
		"chat_template": chatTemplate})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644))
	return dir
}

func loadModel(t *testing.T, dir string) *model.Model {
	t.Helper()
	m, err := model.Load(context.Background(), dir)
	require.NoError(t, err)
	t.Cleanup(m.Close)
	return m
}

// harness is a server over httptest with an OpenAI client pointed at it.
type harness struct {
	m      *model.Model
	eng    engine
	srv    *server
	ts     *httptest.Server
	client openai.Client
	id     string
}

// newHarness serves the model in dir through the engine mk builds.
func newHarness(t *testing.T, dir string, mk func(*testing.T, *model.Model) engine) *harness {
	t.Helper()
	h := &harness{m: loadModel(t, dir), id: filepath.Base(dir)}
	h.srv = newServer(h.id, cliflags.Attention{})
	h.eng = mk(t, h.m)
	h.srv.setReady(h.eng)
	h.ts = httptest.NewServer(h.srv)
	t.Cleanup(h.ts.Close)
	h.client = openai.NewClient(option.WithBaseURL(h.ts.URL+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	return h
}

// reference is the sequential greedy output for a prompt.
func reference(t *testing.T, m *model.Model, req serve.Request) model.Result {
	t.Helper()
	req.Sampling = model.Sampling{}
	res, err := generate(context.Background(), m, req)
	require.NoError(t, err)
	return res
}

// post sends body to path and returns the status and the raw answer.
func (h *harness) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(h.ts.URL+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestCompletions(t *testing.T) {
	h := newHarness(t, testutil.Testdata(t, "stories260K"), realEngine())
	ctx := context.Background()
	for _, tc := range []struct {
		prompt string
		max    int
		stop   []string
		finish string
	}{
		{"Once upon a time", 40, nil, "length"},
		{"Lily saw a big dog", 12, nil, "length"},
		{"Once upon a time", 100, []string{"park"}, "stop"},
	} {
		params := openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
			Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(tc.prompt)},
			MaxTokens: openai.Int(int64(tc.max)), Temperature: openai.Float(0)}
		if tc.stop != nil {
			params.Stop = openai.CompletionNewParamsStopUnion{OfStringArray: tc.stop}
		}
		got, err := h.client.Completions.New(ctx, params)
		require.NoError(t, err)
		want := reference(t, h.m, serve.Request{Prompt: tc.prompt, MaxTokens: tc.max, Stop: tc.stop})
		require.Equal(t, "text_completion", string(got.Object))
		require.Equal(t, h.id, got.Model)
		require.True(t, strings.HasPrefix(got.ID, "cmpl-"), got.ID)
		require.Len(t, got.Choices, 1)
		require.Equal(t, want.Text, got.Choices[0].Text)
		require.Equal(t, tc.finish, string(got.Choices[0].FinishReason))
		require.Equal(t, int64(want.PromptTokens), got.Usage.PromptTokens)
		require.Equal(t, int64(want.GeneratedTokens), got.Usage.CompletionTokens)
		require.Equal(t, int64(want.PromptTokens+want.GeneratedTokens), got.Usage.TotalTokens)
		if tc.finish == "length" {
			require.Equal(t, int64(tc.max), got.Usage.CompletionTokens)
		}
	}

	// A prompt of token ids is the same as its text.
	ids, err := h.m.Tokenizer().Encode("Once upon a time", true)
	require.NoError(t, err)
	toks := make([]int64, len(ids))
	for i, id := range ids {
		toks[i] = int64(id)
	}
	got, err := h.client.Completions.New(ctx, openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
		Prompt:    openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: toks},
		MaxTokens: openai.Int(20), Temperature: openai.Float(0)})
	require.NoError(t, err)
	require.Equal(t, reference(t, h.m, serve.Request{Prompt: "Once upon a time", MaxTokens: 20}).Text, got.Choices[0].Text)
}

// TestSeed: sampled completions with equal seeds are equal; the output is the model's own
// sampled output for that seed.
func TestSeed(t *testing.T) {
	h := newHarness(t, testutil.Testdata(t, "stories260K"), realEngine())
	params := openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens: openai.Int(30), Temperature: openai.Float(1.2), TopP: openai.Float(0.9), Seed: openai.Int(7)}
	a, err := h.client.Completions.New(context.Background(), params)
	require.NoError(t, err)
	b, err := h.client.Completions.New(context.Background(), params)
	require.NoError(t, err)
	require.Equal(t, a.Choices[0].Text, b.Choices[0].Text)
	want, err := generate(context.Background(), h.m, serve.Request{Prompt: "Once upon a time", MaxTokens: 30,
		Sampling: model.Sampling{Temperature: 1.2, TopP: 0.9, Seed: 7}})
	require.NoError(t, err)
	require.Equal(t, want.Text, a.Choices[0].Text)
}

func TestChat(t *testing.T) {
	h := newHarness(t, chatDir(t), realEngine())
	msgs := []tokenizer.Message{{Role: "system", Content: "Tell a story."}, {Role: "user", Content: "Once upon a time"}}
	got, err := h.client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:               h.id,
		Messages:            []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(msgs[0].Content), openai.UserMessage(msgs[1].Content)},
		MaxCompletionTokens: openai.Int(30), Temperature: openai.Float(0)})
	require.NoError(t, err)
	want := reference(t, h.m, serve.Request{Messages: msgs, MaxTokens: 30})
	require.Equal(t, "chat.completion", string(got.Object))
	require.True(t, strings.HasPrefix(got.ID, "chatcmpl-"), got.ID)
	require.Len(t, got.Choices, 1)
	require.Equal(t, "assistant", string(got.Choices[0].Message.Role))
	require.Equal(t, want.Text, got.Choices[0].Message.Content)
	require.NotEmpty(t, want.Text)
	require.Equal(t, finishReason(want.Finish), string(got.Choices[0].FinishReason))
	require.Equal(t, int64(want.PromptTokens), got.Usage.PromptTokens)
	require.Equal(t, int64(want.GeneratedTokens), got.Usage.CompletionTokens)

	// max_tokens works too; the developer role is the system's.
	got, err = h.client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:     h.id,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.DeveloperMessage(msgs[0].Content), openai.UserMessage(msgs[1].Content)},
		MaxTokens: openai.Int(30), Temperature: openai.Float(0)})
	require.NoError(t, err)
	require.Equal(t, want.Text, got.Choices[0].Message.Content)
}

func TestStreaming(t *testing.T) {
	h := newHarness(t, chatDir(t), realEngine())
	ctx := context.Background()
	want := reference(t, h.m, serve.Request{Prompt: "Once upon a time", MaxTokens: 60})

	// Completions: the pieces add up to the text; usage comes in its own last chunk.
	s := h.client.Completions.NewStreaming(ctx, openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens: openai.Int(60), Temperature: openai.Float(0),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	var text strings.Builder
	var chunks int
	var finish string
	var u openai.CompletionUsage
	for s.Next() {
		c := s.Current()
		chunks++
		for _, ch := range c.Choices {
			text.WriteString(ch.Text)
			if ch.FinishReason != "" {
				finish = string(ch.FinishReason)
			}
		}
		if c.Usage.TotalTokens > 0 {
			require.Empty(t, c.Choices)
			u = c.Usage
		}
	}
	require.NoError(t, s.Err())
	require.Equal(t, want.Text, text.String())
	require.Equal(t, "length", finish)
	require.Greater(t, chunks, 10)
	require.Equal(t, int64(want.PromptTokens), u.PromptTokens)
	require.Equal(t, int64(60), u.CompletionTokens)

	// Chat, through the client's accumulator.
	msgs := []tokenizer.Message{{Role: "user", Content: "Once upon a time"}}
	wantChat := reference(t, h.m, serve.Request{Messages: msgs, MaxTokens: 40})
	cs := h.client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: h.id,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(msgs[0].Content)},
		MaxTokens: openai.Int(40), Temperature: openai.Float(0),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	var acc openai.ChatCompletionAccumulator
	for cs.Next() {
		require.True(t, acc.AddChunk(cs.Current()))
	}
	require.NoError(t, cs.Err())
	require.Len(t, acc.Choices, 1)
	require.Equal(t, wantChat.Text, acc.Choices[0].Message.Content)
	require.Equal(t, "assistant", string(acc.Choices[0].Message.Role))
	require.Equal(t, finishReason(wantChat.Finish), acc.Choices[0].FinishReason)
	require.Equal(t, int64(wantChat.GeneratedTokens), acc.Usage.CompletionTokens)

	// On the wire: data lines, no usage chunk unless asked, and data: [DONE] last.
	resp, err := http.Post(h.ts.URL+"/v1/completions", "application/json", strings.NewReader(
		fmt.Sprintf(`{"model": %q, "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0, "stream": true}`, h.id)))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
	require.Equal(t, "data: [DONE]", events[len(events)-1])
	for _, e := range events[:len(events)-1] {
		require.True(t, strings.HasPrefix(e, "data: {"), e)
		var c completion
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(e, "data: ")), &c))
		require.Nil(t, c.Usage)
		require.Len(t, c.Choices, 1)
	}
}

// apiErr returns err as the OpenAI client's error.
func apiErr(t *testing.T, err error) *openai.Error {
	t.Helper()
	var ae *openai.Error
	require.True(t, errors.As(err, &ae), "%v", err)
	return ae
}

// TestErrors: each malformed or unsupported request gets its status and OpenAI's error shape
// naming the field.
func TestErrors(t *testing.T) {
	h := newHarness(t, chatDir(t), realEngine())
	long := strings.Repeat("Lily and Tom played in the park. ", 100) // far past the 512-token context
	for _, tc := range []struct {
		path, body  string
		status      int
		param, code string
	}{
		{"/v1/completions", `{"model": "M", "prompt": "x"`, 400, "", "invalid_json"},
		{"/v1/completions", `[1, 2]`, 400, "", "invalid_json"},
		{"/v1/completions", `{"model": "M", "prompt": "x"} {}`, 400, "", "invalid_json"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "frobnicate": 1}`, 400, "frobnicate", "unknown_parameter"},
		{"/v1/completions", `{"prompt": "x"}`, 400, "model", "missing_required_parameter"},
		{"/v1/completions", `{"model": "M"}`, 400, "prompt", "missing_required_parameter"},
		{"/v1/completions", `{"model": "M", "prompt": {"a": 1}}`, 400, "prompt", "invalid_type"},
		{"/v1/completions", `{"model": "M", "prompt": ["a", "b"]}`, 400, "prompt", "unsupported_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "max_tokens": "ten"}`, 400, "max_tokens", "invalid_type"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "max_tokens": 0}`, 400, "max_tokens", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "temperature": 2.5}`, 400, "temperature", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "temperature": -0.1}`, 400, "temperature", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "top_p": 1.5}`, 400, "top_p", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "n": 2}`, 400, "n", "unsupported_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "best_of": 3}`, 400, "best_of", "unsupported_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "logprobs": 2}`, 400, "logprobs", "unsupported_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "echo": true}`, 400, "echo", "unsupported_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "presence_penalty": 0.5}`, 400, "presence_penalty", "unsupported_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "logit_bias": {"5": 1}}`, 400, "logit_bias", "unsupported_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}`, 400, "stop", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "stop": ""}`, 400, "stop", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "stop": 5}`, 400, "stop", "invalid_type"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "stream_options": {"include_usage": true}}`, 400, "stream_options", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "lighttransfer": {"mode": "sideways"}}`, 400, "lighttransfer.mode", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "lighttransfer": {"kv": "q3"}}`, 400, "lighttransfer", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "lighttransfer": {"mode": "fixed"}}`, 400, "lighttransfer.lazy", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "lighttransfer": {"mode": "fixed", "lazy": [9]}}`, 400, "", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "x", "lighttransfer": {"mode": "test", "keep": 0}}`, 400, "", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": [1, 99999]}`, 400, "prompt", "invalid_value"},
		{"/v1/completions", `{"model": "M", "prompt": "` + long + `"}`, 400, "prompt", "context_length_exceeded"},
		{"/v1/completions", `{"model": "gpt-4o", "prompt": "x"}`, 404, "model", "model_not_found"},
		{"/v1/chat/completions", `{"model": "M", "messages": []}`, 400, "messages", "missing_required_parameter"},
		{"/v1/chat/completions", `{"model": "M", "messages": [{"role": "tool", "content": "x"}]}`, 400, "messages[0].role", "unsupported_value"},
		{"/v1/chat/completions", `{"model": "M", "messages": [{"content": "x"}]}`, 400, "messages[0].role", "missing_required_parameter"},
		{"/v1/chat/completions", `{"model": "M", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}`, 400, "messages[0].content[0].type", "unsupported_value"},
		{"/v1/chat/completions", `{"model": "M", "messages": [{"role": "user", "content": "x"}], "logprobs": true}`, 400, "logprobs", "unsupported_value"},
		{"/v1/chat/completions", `{"model": "M", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}`, 400, "tools", "unsupported_value"},
		{"/v1/chat/completions", `{"model": "M", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}`, 400, "response_format", "unsupported_value"},
		{"/v1/chat/completions", `{"model": "M", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -1}`, 400, "max_completion_tokens", "invalid_value"},
		{"/v1/chat/completions", `{"model": "M", "messages": [{"role": "user", "content": "` + long + `"}]}`, 400, "messages", "context_length_exceeded"},
		{"/v1/chat/completions", `{"model": "nope", "messages": [{"role": "user", "content": "x"}]}`, 404, "model", "model_not_found"},
		{"/v1/embeddings", `{}`, 404, "", "unknown_url"},
	} {
		body := strings.ReplaceAll(tc.body, `"M"`, fmt.Sprintf("%q", h.id))
		status, raw := h.post(t, tc.path, body)
		require.Equal(t, tc.status, status, "%s %s: %s", tc.path, tc.body, raw)
		var e struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Param   *string `json:"param"`
				Code    *string `json:"code"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(raw), &e), raw)
		require.NotEmpty(t, e.Error.Message, raw)
		require.Equal(t, "invalid_request_error", e.Error.Type, raw)
		if tc.param == "" {
			require.Nil(t, e.Error.Param, raw)
		} else {
			require.NotNil(t, e.Error.Param, raw)
			require.Equal(t, tc.param, *e.Error.Param, raw)
			require.Contains(t, e.Error.Message, strings.SplitN(tc.param, "[", 2)[0], raw)
		}
		require.NotNil(t, e.Error.Code, raw)
		require.Equal(t, tc.code, *e.Error.Code, raw)
	}

	// Through the official client, for a streaming request too: refused before it starts, so
	// the status is the HTTP error's.
	_, err := h.client.Completions.New(context.Background(), openai.CompletionNewParams{Model: "nope",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")}})
	require.Equal(t, 404, apiErr(t, err).StatusCode)
	require.Equal(t, "model_not_found", apiErr(t, err).Code)
	s := h.client.Completions.NewStreaming(context.Background(), openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(long)}})
	require.False(t, s.Next())
	require.Equal(t, 400, apiErr(t, s.Err()).StatusCode)
	require.Equal(t, "context_length_exceeded", apiErr(t, s.Err()).Code)

	// A model without a chat template cannot chat.
	plain := newHarness(t, testutil.Testdata(t, "stories260K"), realEngine())
	_, err = plain.client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: plain.id,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	require.Equal(t, 400, apiErr(t, err).StatusCode)
	require.Equal(t, "no_chat_template", apiErr(t, err).Code)
}

// TestExtension: the lighttransfer field chooses the request's attention mode; its output is
// the model's own in that mode.
func TestExtension(t *testing.T) {
	h := newHarness(t, testutil.Testdata(t, "stories260K"), realEngine())
	prompt := strings.Repeat("Lily and Tom played in the park. ", 6)
	for _, tc := range []struct {
		ext  map[string]any
		attn cliflags.Attention
	}{
		{map[string]any{"mode": "test", "keep": 0.4, "sink": 2, "window": 8, "last": 4, "kv": "q8"},
			cliflags.Attention{Mode: "test", Keep: 0.4, KeepSet: true, Sink: 2, SinkSet: true, Window: 8, WindowSet: true, Last: 4, LastSet: true, KV: "q8"}},
		{map[string]any{"mode": "fixed", "lazy": []int{1, 3}, "window": 8},
			cliflags.Attention{Mode: "fixed", Lazy: []int{1, 3}, Window: 8, WindowSet: true}},
		{map[string]any{"mode": "full", "kv": "bf16"}, cliflags.Attention{Mode: "full", KV: "bf16"}},
	} {
		got, err := h.client.Completions.New(context.Background(), openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
			Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
			MaxTokens: openai.Int(40), Temperature: openai.Float(0)}, option.WithJSONSet("lighttransfer", tc.ext))
		require.NoError(t, err, "%v", tc.ext)
		opts, err := tc.attn.SessionOptions()
		require.NoError(t, err)
		want := reference(t, h.m, serve.Request{Prompt: prompt, MaxTokens: 40, Session: opts})
		require.Equal(t, want.Text, got.Choices[0].Text, "%v", tc.ext)
	}
}

func TestModelsAndHealth(t *testing.T) {
	h := newHarness(t, testutil.Testdata(t, "stories260K"), realEngine())
	page, err := h.client.Models.List(context.Background())
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	require.Equal(t, "stories260K", page.Data[0].ID)
	require.Equal(t, "model", string(page.Data[0].Object))
	one, err := h.client.Models.Get(context.Background(), "stories260K")
	require.NoError(t, err)
	require.Equal(t, "stories260K", one.ID)
	_, err = h.client.Models.Get(context.Background(), "other")
	require.Equal(t, 404, apiErr(t, err).StatusCode)

	resp, err := http.Get(h.ts.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	// Before the model is loaded: /healthz and the generation endpoints answer 503.
	loading := httptest.NewServer(newServer("x", cliflags.Attention{}))
	defer loading.Close()
	resp, err = http.Get(loading.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 503, resp.StatusCode)
	resp, err = http.Post(loading.URL+"/v1/completions", "application/json", strings.NewReader(`{"model": "x", "prompt": "y"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 503, resp.StatusCode)
}

// metricValue scrapes /metrics at url and returns the value of the sample named exactly
// name (labels included), or -1 when absent.
func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var v float64
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			_, err := fmt.Sscan(rest, &v)
			require.NoError(t, err)
			return v
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, testutil.Testdata(t, "stories260K"), realEngine())
	_, err := h.client.Completions.New(context.Background(), openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(h.id),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once")}, MaxTokens: openai.Int(7), Temperature: openai.Float(0)})
	require.NoError(t, err)
	h.post(t, "/v1/completions", `{"model": "nope", "prompt": "x"}`)
	for _, name := range []string{"lighttransfer_serve_running_sequences", "lighttransfer_serve_waiting_requests",
		"lighttransfer_serve_kv_bytes", "lighttransfer_serve_kv_budget_bytes", "lighttransfer_serve_decode_tokens_per_second",
		"lighttransfer_serve_completed_requests_total"} {
		require.GreaterOrEqual(t, metricValue(t, h.ts.URL, name), 0.0, name)
	}
	require.Equal(t, 1.0, metricValue(t, h.ts.URL, "lighttransfer_serve_completed_requests_total"))
	require.Equal(t, 7.0, metricValue(t, h.ts.URL, "lighttransfer_serve_completion_tokens_total"))
	require.Equal(t, 1.0, metricValue(t, h.ts.URL, `lighttransfer_serve_http_requests_total{code="200",endpoint="completions"}`))
	require.Equal(t, 1.0, metricValue(t, h.ts.URL, `lighttransfer_serve_http_requests_total{code="404",endpoint="completions"}`))
}

// waitFor polls cond every millisecond for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// FuzzRequest: any body either is refused with an error in OpenAI's shape (a 4xx status and a
// message) or becomes a job with exactly one prompt form and at least one token to generate.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"model": "m", "prompt": "x", "max_tokens": 3, "stop": ["a"], "stream": true, "stream_options": {"include_usage": true}}`,
		`{"model": "m", "prompt": [[1, 2]], "temperature": 0.5, "top_p": 0.9, "seed": -4}`,
		`{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_completion_tokens": 9}`,
		`{"model": "m", "messages": [{"role": "developer", "content": "x"}], "lighttransfer": {"mode": "test", "keep": 0.5, "kv": "q8"}}`,
		`{"model": "m", "prompt": "x", "lighttransfer": {"lazy": [1, 3], "window": 8}}`,
		`{"model": 5}`, `[]`, `null`, `{"prompt": 1e999}`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, body string, chat bool) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		var j *job
		var err *apiError
		if chat {
			var req chatRequest
			if err = decode(r, w, &req); err == nil {
				j, err = chatJob(&req, cliflags.Attention{})
			}
		} else {
			var req completionRequest
			if err = decode(r, w, &req); err == nil {
				j, err = completionJob(&req, cliflags.Attention{})
			}
		}
		if err != nil {
			if err.Status < 400 || err.Status > 499 || err.Message == "" {
				t.Fatalf("error %+v", err)
			}
			if _, e := err.MarshalJSON(); e != nil {
				t.Fatal(e)
			}
			return
		}
		forms := 0
		for _, b := range []bool{j.req.Prompt != "" || (j.req.Tokens == nil && j.req.Messages == nil), j.req.Tokens != nil, j.req.Messages != nil} {
			if b {
				forms++
			}
		}
		if forms != 1 || j.req.MaxTokens < 1 || j.req.Sampling.Validate() != nil {
			t.Fatalf("job %+v from %s", j.req, body)
		}
	})
}
