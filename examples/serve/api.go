package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/lighttransfer/lighttransfer-go/internal/cliflags"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/serve"
)

// This file holds the OpenAI request and response shapes the server speaks, their decoding
// and validation, and OpenAI's error shape.

// maxBody bounds a request body.
const maxBody = 8 << 20

// maxStops is OpenAI's limit on stop sequences.
const maxStops = 4

// defaultCompletionTokens is OpenAI's max_tokens default for /v1/completions.
const defaultCompletionTokens = 16

// apiError is an error answered in OpenAI's shape:
// {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}.
type apiError struct {
	Status  int    // HTTP status
	Message string // human-readable
	Type    string // invalid_request_error, rate_limit_error, server_error
	Param   string // the request field at fault, "" for none
	Code    string // machine-readable, "" for none
}

func (e *apiError) Error() string { return e.Message }

// MarshalJSON writes the error in OpenAI's envelope, with JSON null for an empty param or code.
func (e *apiError) MarshalJSON() ([]byte, error) {
	null := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	return json.Marshal(struct {
		Error body `json:"error"`
	}{body{e.Message, e.Type, null(e.Param), null(e.Code)}})
}

// badRequest is a 400 invalid_request_error about param.
func badRequest(param, code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: code,
		Message: fmt.Sprintf(format, args...)}
}

// unsupported is a 400 about a field value this server does not implement.
func unsupported(param, format string, args ...any) *apiError {
	return badRequest(param, "unsupported_value", "%s: "+format+" (not supported by this server)", append([]any{param}, args...)...)
}

// extension is the "lighttransfer" request field: the attention mode of this request's
// session. Fields left out keep the server's flags.
type extension struct {
	Mode   *string  `json:"mode"`   // full, test or fixed
	Keep   *float64 `json:"keep"`   // test mode: fraction of layers kept full, (0, 1]
	Sink   *int     `json:"sink"`   // streaming layers: attention-sink tokens
	Window *int     `json:"window"` // streaming layers: recent window
	Last   *int     `json:"last"`   // test mode: prompt queries the lazy ratio averages over
	Lazy   []int    `json:"lazy"`   // fixed mode: the lazy layers
	KV     *string  `json:"kv"`     // KV element type: f32, bf16, q8, q4
}

// streamOptions is OpenAI's stream_options.
type streamOptions struct {
	IncludeUsage       bool `json:"include_usage"`
	IncludeObfuscation bool `json:"include_obfuscation"` // accepted and ignored
}

// common holds the fields /v1/completions and /v1/chat/completions share.
type common struct {
	Model            string             `json:"model"`
	MaxTokens        *int               `json:"max_tokens"`
	Temperature      *float64           `json:"temperature"`
	TopP             *float64           `json:"top_p"`
	Seed             *int64             `json:"seed"`
	Stop             json.RawMessage    `json:"stop"`
	Stream           *bool              `json:"stream"`
	StreamOptions    *streamOptions     `json:"stream_options"`
	N                *int               `json:"n"`
	PresencePenalty  *float64           `json:"presence_penalty"`
	FrequencyPenalty *float64           `json:"frequency_penalty"`
	LogitBias        map[string]float64 `json:"logit_bias"`
	User             string             `json:"user"` // accepted and ignored
	LightTransfer    *extension         `json:"lighttransfer"`
}

// completionRequest is the body of POST /v1/completions.
type completionRequest struct {
	common
	Prompt   json.RawMessage `json:"prompt"`
	BestOf   *int            `json:"best_of"`
	Echo     *bool           `json:"echo"`
	Logprobs *int            `json:"logprobs"`
	Suffix   *string         `json:"suffix"`
}

// chatMessage is one entry of a chat request's messages.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Name    string          `json:"name"` // accepted and ignored
}

// chatRequest is the body of POST /v1/chat/completions.
type chatRequest struct {
	common
	Messages            []chatMessage   `json:"messages"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Logprobs            *bool           `json:"logprobs"`
	TopLogprobs         *int            `json:"top_logprobs"`
	Tools               json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ResponseFormat      *struct {
		Type string `json:"type"`
	} `json:"response_format"`
	Store    *bool             `json:"store"`    // accepted and ignored
	Metadata map[string]string `json:"metadata"` // accepted and ignored
}

// job is a validated request: what to submit and how to answer.
type job struct {
	chat         bool
	req          serve.Request
	stream       bool
	includeUsage bool
}

// decode reads a JSON body into v, rejecting unknown fields, trailing data and bodies over
// maxBody, each as a 400 naming what is wrong.
func decode(r *http.Request, w http.ResponseWriter, v any) *apiError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var maxErr *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &maxErr):
			return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
				Code: "request_too_large", Message: fmt.Sprintf("request body is larger than %d bytes", maxBody)}
		case errors.As(err, &typeErr) && typeErr.Field != "":
			field := strings.TrimPrefix(typeErr.Field, "common.") // the embedded struct's name
			return badRequest(field, "invalid_type", "%s: want a JSON %s, not %s", field, typeErr.Type, typeErr.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return badRequest(field, "unknown_parameter", "unrecognized request argument supplied: %s", field)
		}
		return badRequest("", "invalid_json", "malformed JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("", "invalid_json", "malformed JSON body: data after the JSON object")
	}
	return nil
}

// isNull reports a field that is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// params turns the shared fields into a job, checking their ranges. defaults are the
// server's attention flags; defaultMax is the max_tokens default of the endpoint.
func (c *common) params(j *job, attn cliflags.Attention, defaultMax int) *apiError {
	switch {
	case c.Model == "":
		return badRequest("model", "missing_required_parameter", "model: required")
	case c.N != nil && *c.N != 1:
		return unsupported("n", "%d choices", *c.N)
	case c.PresencePenalty != nil && *c.PresencePenalty != 0:
		return unsupported("presence_penalty", "%v", *c.PresencePenalty)
	case c.FrequencyPenalty != nil && *c.FrequencyPenalty != 0:
		return unsupported("frequency_penalty", "%v", *c.FrequencyPenalty)
	case len(c.LogitBias) > 0:
		return unsupported("logit_bias", "a bias for %d tokens", len(c.LogitBias))
	case c.StreamOptions != nil && (c.Stream == nil || !*c.Stream):
		return badRequest("stream_options", "invalid_value", "stream_options: only allowed when stream is true")
	}
	j.stream = c.Stream != nil && *c.Stream
	j.includeUsage = c.StreamOptions != nil && c.StreamOptions.IncludeUsage
	j.req.MaxTokens = defaultMax
	if c.MaxTokens != nil {
		if *c.MaxTokens < 1 {
			return badRequest("max_tokens", "invalid_value", "max_tokens: %d must be at least 1", *c.MaxTokens)
		}
		j.req.MaxTokens = *c.MaxTokens
	}
	// OpenAI's defaults: temperature 1, top_p 1, and a seed of the server's choosing.
	s := model.Sampling{Temperature: 1, Seed: randomSeed()}
	if t := c.Temperature; t != nil {
		if math.IsNaN(*t) || *t < 0 || *t > 2 {
			return badRequest("temperature", "invalid_value", "temperature: %v is not in [0, 2]", *t)
		}
		s.Temperature = *t
	}
	if p := c.TopP; p != nil {
		switch {
		case math.IsNaN(*p) || *p < 0 || *p > 1:
			return badRequest("top_p", "invalid_value", "top_p: %v is not in [0, 1]", *p)
		case *p == 0: // only the most likely token
			s.Temperature = 0
		case *p < 1:
			s.TopP = *p
		}
	}
	if c.Seed != nil {
		s.Seed = uint64(*c.Seed)
	}
	j.req.Sampling = s
	stops, err := parseStop(c.Stop)
	if err != nil {
		return err
	}
	j.req.Stop = stops
	opts, err := sessionOptions(attn, c.LightTransfer)
	if err != nil {
		return err
	}
	j.req.Session = opts
	return nil
}

// parseStop reads stop: null, a string, or an array of at most maxStops non-empty strings.
func parseStop(raw json.RawMessage) ([]string, *apiError) {
	if isNull(raw) {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, badRequest("stop", "invalid_value", "stop: empty string")
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, badRequest("stop", "invalid_type", "stop: want a string or an array of strings")
	}
	if len(many) > maxStops {
		return nil, badRequest("stop", "invalid_value", "stop: %d sequences, at most %d", len(many), maxStops)
	}
	for i, s := range many {
		if s == "" {
			return nil, badRequest("stop", "invalid_value", "stop[%d]: empty string", i)
		}
	}
	return many, nil
}

// sessionOptions overlays the request's lighttransfer field on the server's attention flags.
// A mode other than fixed drops the server's lazy layers and plan; lazy layers imply fixed.
func sessionOptions(a cliflags.Attention, ext *extension) ([]model.SessionOption, *apiError) {
	if ext != nil {
		if ext.Mode != nil {
			switch *ext.Mode {
			case "full", "test", "fixed":
			default:
				return nil, badRequest("lighttransfer.mode", "invalid_value", "lighttransfer.mode: %q, want full, test or fixed", *ext.Mode)
			}
			if *ext.Mode != a.Mode {
				a.Lazy, a.Plan = nil, ""
			}
			a.Mode = *ext.Mode
		}
		if ext.Lazy != nil {
			a.Lazy, a.Plan = ext.Lazy, ""
			if a.Mode == "" {
				a.Mode = "fixed"
			}
		}
		if ext.Mode != nil && *ext.Mode == "fixed" && len(a.Lazy) == 0 && a.Plan == "" {
			return nil, badRequest("lighttransfer.lazy", "invalid_value", "lighttransfer.lazy: mode fixed needs lazy layers")
		}
		if ext.Keep != nil {
			a.Keep, a.KeepSet = *ext.Keep, true
		}
		if ext.Sink != nil {
			a.Sink, a.SinkSet = *ext.Sink, true
		}
		if ext.Window != nil {
			a.Window, a.WindowSet = *ext.Window, true
		}
		if ext.Last != nil {
			a.Last, a.LastSet = *ext.Last, true
		}
		if ext.KV != nil {
			a.KV = *ext.KV
		}
	}
	opts, err := a.SessionOptions()
	if err != nil {
		return nil, badRequest("lighttransfer", "invalid_value", "lighttransfer: %v", err)
	}
	return opts, nil
}

// completionJob validates a /v1/completions body.
func completionJob(r *completionRequest, attn cliflags.Attention) (*job, *apiError) {
	j := &job{}
	if err := r.params(j, attn, defaultCompletionTokens); err != nil {
		return nil, err
	}
	switch {
	case r.BestOf != nil && *r.BestOf != 1:
		return nil, unsupported("best_of", "%d", *r.BestOf)
	case r.Echo != nil && *r.Echo:
		return nil, unsupported("echo", "true")
	case r.Logprobs != nil && *r.Logprobs != 0:
		return nil, unsupported("logprobs", "%d", *r.Logprobs)
	case r.Suffix != nil && *r.Suffix != "":
		return nil, unsupported("suffix", "a suffix")
	}
	if err := parsePrompt(r.Prompt, &j.req); err != nil {
		return nil, err
	}
	return j, nil
}

// parsePrompt reads prompt: a string, an array of one string, an array of token ids, or an
// array of one array of token ids. More than one prompt is unsupported (it would be n > 1).
func parsePrompt(raw json.RawMessage, req *serve.Request) *apiError {
	if isNull(raw) {
		return badRequest("prompt", "missing_required_parameter", "prompt: required")
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		req.Prompt = text
		return nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		if len(texts) != 1 {
			return unsupported("prompt", "%d prompts in one request", len(texts))
		}
		req.Prompt = texts[0]
		return nil
	}
	var ids []int32
	if json.Unmarshal(raw, &ids) == nil {
		if len(ids) == 0 {
			return badRequest("prompt", "invalid_value", "prompt: empty token array")
		}
		req.Tokens = ids
		return nil
	}
	var idss [][]int32
	if json.Unmarshal(raw, &idss) == nil {
		if len(idss) != 1 {
			return unsupported("prompt", "%d prompts in one request", len(idss))
		}
		if len(idss[0]) == 0 {
			return badRequest("prompt", "invalid_value", "prompt: empty token array")
		}
		req.Tokens = idss[0]
		return nil
	}
	return badRequest("prompt", "invalid_type", "prompt: want a string, an array of strings or an array of token ids")
}

// chatJob validates a /v1/chat/completions body.
func chatJob(r *chatRequest, attn cliflags.Attention) (*job, *apiError) {
	j := &job{chat: true}
	if err := r.params(j, attn, model.DefaultMaxTokens); err != nil {
		return nil, err
	}
	if r.MaxCompletionTokens != nil {
		if *r.MaxCompletionTokens < 1 {
			return nil, badRequest("max_completion_tokens", "invalid_value", "max_completion_tokens: %d must be at least 1", *r.MaxCompletionTokens)
		}
		j.req.MaxTokens = *r.MaxCompletionTokens
	}
	switch {
	case r.Logprobs != nil && *r.Logprobs:
		return nil, unsupported("logprobs", "true")
	case r.TopLogprobs != nil && *r.TopLogprobs != 0:
		return nil, unsupported("top_logprobs", "%d", *r.TopLogprobs)
	case !isNull(r.Tools) && string(bytes.TrimSpace(r.Tools)) != "[]":
		return nil, unsupported("tools", "tool calls")
	case !isNull(r.ToolChoice) && string(bytes.TrimSpace(r.ToolChoice)) != `"none"`:
		return nil, unsupported("tool_choice", "%s", r.ToolChoice)
	case r.ResponseFormat != nil && r.ResponseFormat.Type != "text":
		return nil, unsupported("response_format", "type %q", r.ResponseFormat.Type)
	case len(r.Messages) == 0:
		return nil, badRequest("messages", "missing_required_parameter", "messages: at least one message is required")
	}
	for i, m := range r.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		role := m.Role
		switch role {
		case "system", "user", "assistant":
		case "developer":
			role = "system"
		case "":
			return nil, badRequest(param+".role", "missing_required_parameter", "%s.role: required", param)
		default:
			return nil, unsupported(param+".role", "role %q", role)
		}
		content, err := messageText(m.Content, param+".content")
		if err != nil {
			return nil, err
		}
		j.req.Messages = append(j.req.Messages, tokenizer.Message{Role: role, Content: content})
	}
	return j, nil
}

// messageText reads a message's content: a string or an array of text parts.
func messageText(raw json.RawMessage, param string) (string, *apiError) {
	if isNull(raw) {
		return "", badRequest(param, "missing_required_parameter", "%s: required", param)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", badRequest(param, "invalid_type", "%s: want a string or an array of content parts", param)
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", unsupported(fmt.Sprintf("%s[%d].type", param, i), "content part %q", p.Type)
		}
		b.WriteString(*p.Text)
	}
	return b.String(), nil
}

// usage is OpenAI's token accounting.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(r model.Result) *usage {
	return &usage{PromptTokens: r.PromptTokens, CompletionTokens: r.GeneratedTokens, TotalTokens: r.PromptTokens + r.GeneratedTokens}
}

// finishReason maps the library's finish reasons onto OpenAI's stop and length.
func finishReason(f model.FinishReason) string {
	switch f {
	case model.FinishLength, model.FinishContext:
		return "length"
	}
	return "stop"
}

// completionChoice is a choice of a completion or of a completion stream chunk.
type completionChoice struct {
	Text         string    `json:"text"`
	Index        int       `json:"index"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

// completion is the /v1/completions response and, with object text_completion too, each
// stream chunk.
type completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage"`
}

// chatMessageOut is the assistant message of a chat response, or a stream chunk's delta.
type chatMessageOut struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// chatChoice is a choice of a chat response (Message) or of a stream chunk (Delta).
type chatChoice struct {
	Index        int             `json:"index"`
	Message      *chatMessageOut `json:"message,omitempty"`
	Delta        *chatMessageOut `json:"delta,omitempty"`
	Logprobs     *struct{}       `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// chatCompletion is the /v1/chat/completions response (object chat.completion) and each
// stream chunk (object chat.completion.chunk).
type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage"`
}

// modelObject is one entry of GET /v1/models.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}
