package tokenizer

import (
	"fmt"

	"github.com/ardanlabs/jinja"
)

// Message is one chat turn: Role is "system", "user", "assistant" or "tool"
// (whatever the template understands), Content its text.
type Message struct {
	Role    string
	Content string
}

// HasChatTemplate reports whether tokenizer_config.json supplied a chat template.
func (t *Tokenizer) HasChatTemplate() bool { return t.hasTemplate }

// compiledTemplate compiles the chat template once, on first use.
func (t *Tokenizer) compiledTemplate() (*jinja.Template, error) {
	t.tmplOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				t.tmplErr = fmt.Errorf("%w: chat template: %v", ErrFormat, r)
			}
		}()
		tm, err := jinja.Compile(t.chatTemplate)
		if err != nil {
			t.tmplErr = fmt.Errorf("%w: chat template: %v", ErrFormat, err)
			return
		}
		t.tmpl = tm
	})
	return t.tmpl, t.tmplErr
}

// ApplyChatTemplate renders the tokenizer_config.json chat_template (Jinja,
// with Hugging Face's trim_blocks and lstrip_blocks) for msgs. The template
// sees messages (each with role and content), add_generation_prompt, and
// bos_token / eos_token ("" when not configured); tools is undefined. The
// result is text: encode it with Encode(s, false) since templates write BOS
// themselves. Without a template it returns an error wrapping ErrNoTemplate;
// template errors (including raise_exception) wrap ErrFormat.
func (t *Tokenizer) ApplyChatTemplate(msgs []Message, addGenerationPrompt bool) (out string, err error) {
	if !t.hasTemplate {
		return "", ErrNoTemplate
	}
	tm, err := t.compiledTemplate()
	if err != nil {
		return "", err
	}
	ms := make([]any, len(msgs))
	for i, m := range msgs {
		ms[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	data := map[string]any{
		"messages":              ms,
		"add_generation_prompt": addGenerationPrompt,
		"bos_token":             t.bosStr,
		"eos_token":             t.eosStr,
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("%w: chat template: %v", ErrFormat, r)
		}
	}()
	s, err := tm.Render(data)
	if err != nil {
		return "", fmt.Errorf("%w: chat template: %v", ErrFormat, err)
	}
	return s, nil
}
