package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Decoding runs the tokens of the ids through a chain of streaming stages, one
// per decoder of tokenizer.json. Stages pass "chunks": pieces of a token
// (start marks the first chunk of a token, end the last). Decode and the
// StreamDecoder run the very same chain, so what a StreamDecoder emits plus
// its Flush always equals Decode of the same ids.

type decKind uint8

const (
	decByteLevel decKind = iota
	decByteFallback
	decFuse
	decReplace
	decStrip
	decMetaspace
	decJoinSpace // no decoder: tokens joined with " "
)

type decoderSpec struct {
	kind        decKind
	pat         *pattern // Replace
	content     string   // Replace
	r           rune     // Strip content, Metaspace replacement
	start, stop int      // Strip
	never       bool     // Metaspace prepend_scheme == never
}

type chunk struct {
	text       string
	start, end bool
}

type stage interface {
	push(c *chain, i int, ch chunk)
	flush(c *chain, i int)
}

type chain struct {
	st  []stage
	out strings.Builder
}

func (c *chain) emit(i int, ch chunk) {
	if i == len(c.st) {
		c.out.WriteString(ch.text)
		return
	}
	c.st[i].push(c, i+1, ch)
}

func (c *chain) flush(i int) {
	if i < len(c.st) {
		c.st[i].flush(c, i+1)
	}
}

func (t *Tokenizer) newChain() *chain {
	c := &chain{}
	if len(t.decoder) == 0 {
		c.st = append(c.st, &joinSpace{})
	}
	for _, d := range t.decoder {
		switch d.kind {
		case decByteLevel:
			c.st = append(c.st, &byteLevelDec{})
		case decByteFallback:
			c.st = append(c.st, &byteFallbackDec{})
		case decFuse:
			c.st = append(c.st, &fuseDec{})
		case decReplace:
			c.st = append(c.st, &replaceDec{pat: d.pat, content: d.content})
		case decStrip:
			c.st = append(c.st, &stripDec{r: d.r, start: d.start, stop: d.stop})
		case decMetaspace:
			c.st = append(c.st, &metaspaceDec{r: d.r, never: d.never})
		}
	}
	return c
}

// tokenBuf collects the chunks of one token until its end.
type tokenBuf struct {
	b    strings.Builder
	open bool
}

// add returns the whole token and true once ch ends it.
func (tb *tokenBuf) add(ch chunk) (string, bool) {
	if ch.start && ch.end && !tb.open {
		return ch.text, true
	}
	tb.open = true
	tb.b.WriteString(ch.text)
	if !ch.end {
		return "", false
	}
	s := tb.b.String()
	tb.b.Reset()
	tb.open = false
	return s, true
}

// pending returns the unfinished token (at flush).
func (tb *tokenBuf) pending() (string, bool) {
	if !tb.open {
		return "", false
	}
	s := tb.b.String()
	tb.b.Reset()
	tb.open = false
	return s, true
}

// out tracks the start flag of a stage's current output token.
type out struct{ inTok bool }

func (o *out) emit(c *chain, i int, text string, end bool) {
	c.emit(i, chunk{text: text, start: !o.inTok, end: end})
	o.inTok = !end
}

// ---- ByteLevel: token characters back to bytes, then lossy UTF-8 ----

type byteLevelDec struct {
	tb   tokenBuf
	u    lossyUTF8
	o    out
	buf  []byte
	text []byte
}

func (d *byteLevelDec) push(c *chain, i int, ch chunk) {
	tok, ok := d.tb.add(ch)
	if !ok {
		return
	}
	d.tokenBytes(tok)
	d.text = d.u.write(d.text[:0], d.buf)
	if len(d.text) > 0 {
		d.o.emit(c, i, string(d.text), false)
	}
}

// tokenBytes maps each character of tok to its byte; if one is not a
// byte-level character the token's own UTF-8 bytes are used.
func (d *byteLevelDec) tokenBytes(tok string) {
	d.buf = d.buf[:0]
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			d.buf = append(d.buf[:0], tok...)
			return
		}
		d.buf = append(d.buf, b)
	}
}

func (d *byteLevelDec) flush(c *chain, i int) {
	if tok, ok := d.tb.pending(); ok {
		d.tokenBytes(tok)
		d.text = d.u.write(d.text[:0], d.buf)
	} else {
		d.text = d.text[:0]
	}
	d.text = d.u.flush(d.text)
	if len(d.text) > 0 || d.o.inTok {
		d.o.emit(c, i, string(d.text), true)
	}
	c.flush(i)
}

// ---- ByteFallback: runs of <0xAB> tokens to text ----

type byteFallbackDec struct {
	tb    tokenBuf
	bytes []byte
}

func parseByteToken(tok string) (byte, bool) {
	if len(tok) != 6 || !strings.HasPrefix(tok, "<0x") || tok[5] != '>' {
		return 0, false
	}
	// Rust's u8::from_str_radix accepts a leading '+'.
	h := tok[3:5]
	if h[0] == '+' {
		h = h[1:]
	}
	var v int
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= '0' && c <= '9':
			v = v*16 + int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v*16 + int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v*16 + int(c-'A'+10)
		default:
			return 0, false
		}
	}
	return byte(v), true
}

func (d *byteFallbackDec) flushBytes(c *chain, i int) {
	if len(d.bytes) == 0 {
		return
	}
	if utf8.Valid(d.bytes) {
		c.emit(i, chunk{text: string(d.bytes), start: true, end: true})
	} else {
		for range d.bytes {
			c.emit(i, chunk{text: "\uFFFD", start: true, end: true})
		}
	}
	d.bytes = d.bytes[:0]
}

func (d *byteFallbackDec) push(c *chain, i int, ch chunk) {
	tok, ok := d.tb.add(ch)
	if !ok {
		return
	}
	if b, ok := parseByteToken(tok); ok {
		d.bytes = append(d.bytes, b)
		return
	}
	d.flushBytes(c, i)
	c.emit(i, chunk{text: tok, start: true, end: true})
}

func (d *byteFallbackDec) flush(c *chain, i int) {
	if tok, ok := d.tb.pending(); ok {
		d.push(c, i, chunk{text: tok, start: true, end: true})
	}
	d.flushBytes(c, i)
	c.flush(i)
}

// ---- Fuse: all tokens into one ----

type fuseDec struct{ started bool }

func (d *fuseDec) push(c *chain, i int, ch chunk) {
	c.emit(i, chunk{text: ch.text, start: !d.started})
	d.started = true
}

func (d *fuseDec) flush(c *chain, i int) {
	if d.started {
		c.emit(i, chunk{end: true})
	} else {
		c.emit(i, chunk{start: true, end: true}) // Fuse of nothing is one empty token
	}
	d.started = false
	c.flush(i)
}

// ---- Replace ----

type replaceDec struct {
	pat     *pattern
	content string
	tb      tokenBuf // regex patterns: whole tokens
	pend    string   // literal patterns: held-back tail of the current token
	o       out
}

func (d *replaceDec) push(c *chain, i int, ch chunk) {
	if d.pat.re != nil || d.pat.lit == "" {
		tok, ok := d.tb.add(ch)
		if ok {
			d.o.emit(c, i, d.pat.replaceAll(tok, d.content), true)
		}
		return
	}
	if ch.start && ch.end && d.pend == "" {
		d.o.emit(c, i, strings.ReplaceAll(ch.text, d.pat.lit, d.content), true)
		return
	}
	buf := d.pend + ch.text
	if ch.end {
		d.pend = ""
		d.o.emit(c, i, strings.ReplaceAll(buf, d.pat.lit, d.content), true)
		return
	}
	// Keep back what could still start a match.
	lastEnd := 0
	for k := 0; ; {
		j := strings.Index(buf[k:], d.pat.lit)
		if j < 0 {
			break
		}
		k += j + len(d.pat.lit)
		lastEnd = k
	}
	cut := max(lastEnd, len(buf)-(len(d.pat.lit)-1))
	for cut > 0 && cut < len(buf) && !utf8.RuneStart(buf[cut]) {
		cut--
	}
	d.pend = buf[cut:]
	d.o.emit(c, i, strings.ReplaceAll(buf[:cut], d.pat.lit, d.content), false)
}

func (d *replaceDec) flush(c *chain, i int) {
	if tok, ok := d.tb.pending(); ok {
		d.o.emit(c, i, d.pat.replaceAll(tok, d.content), true)
	} else if d.o.inTok || d.pend != "" {
		d.o.emit(c, i, strings.ReplaceAll(d.pend, d.pat.lit, d.content), true)
	}
	d.pend = ""
	c.flush(i)
}

// ---- Strip: up to start leading and stop trailing content characters per token ----

type stripDec struct {
	r           rune
	start, stop int
	stripped    int  // leading characters removed from the current token
	leading     bool // still inside the token's leading run
	held        []rune
	o           out
	b           strings.Builder
}

func (d *stripDec) push(c *chain, i int, ch chunk) {
	if ch.start {
		d.stripped, d.leading, d.held = 0, true, d.held[:0]
	}
	if d.stop == 0 && (!d.leading || d.start == 0) {
		d.o.emit(c, i, ch.text, ch.end) // nothing left to strip in this token
		return
	}
	d.b.Reset()
	for _, r := range ch.text {
		if d.leading && d.stripped < d.start && r == d.r {
			d.stripped++
			continue
		}
		d.leading = false
		if d.stop == 0 {
			d.b.WriteRune(r)
			continue
		}
		if r == d.r {
			d.held = append(d.held, r)
			if len(d.held) > d.stop {
				d.b.WriteRune(d.held[0])
				d.held = d.held[1:]
			}
			continue
		}
		for _, h := range d.held {
			d.b.WriteRune(h)
		}
		d.held = d.held[:0]
		d.b.WriteRune(r)
	}
	if ch.end {
		d.held = d.held[:0] // at most stop trailing content characters: dropped
	}
	d.o.emit(c, i, d.b.String(), ch.end)
}

func (d *stripDec) flush(c *chain, i int) {
	if d.o.inTok {
		d.o.emit(c, i, "", true)
	}
	d.held = d.held[:0]
	c.flush(i)
}

// ---- Metaspace: replacement character back to space ----

type metaspaceDec struct {
	r     rune
	never bool
	n     int // tokens started
	o     out
}

func (d *metaspaceDec) push(c *chain, i int, ch chunk) {
	if ch.start {
		d.n++
	}
	first := d.n == 1 && !d.never
	if !strings.ContainsRune(ch.text, d.r) {
		d.o.emit(c, i, ch.text, ch.end)
		return
	}
	var b strings.Builder
	for _, r := range ch.text {
		switch {
		case r != d.r:
			b.WriteRune(r)
		case !first:
			b.WriteByte(' ')
		}
	}
	d.o.emit(c, i, b.String(), ch.end)
}

func (d *metaspaceDec) flush(c *chain, i int) {
	if d.o.inTok {
		d.o.emit(c, i, "", true)
	}
	c.flush(i)
}

// ---- no decoder: join tokens with spaces ----

type joinSpace struct{ n int }

func (d *joinSpace) push(c *chain, i int, ch chunk) {
	if ch.start {
		if d.n > 0 {
			c.emit(i, chunk{text: " "})
		}
		d.n++
	}
	c.emit(i, chunk{text: ch.text, start: ch.start, end: ch.end})
}

func (d *joinSpace) flush(c *chain, i int) { c.flush(i) }

// ---- lossy UTF-8 (Rust's String::from_utf8_lossy, streamable) ----

// lossyUTF8 replaces each maximal invalid subsequence by U+FFFD, holding back
// an incomplete trailing sequence until more bytes or flush.
type lossyUTF8 struct {
	pend   [4]byte
	n      int  // bytes pending
	need   int  // continuation bytes still needed
	lo, hi byte // range of the next continuation byte
}

func (l *lossyUTF8) write(dst, b []byte) []byte {
	for k := 0; k < len(b); k++ {
		x := b[k]
		if l.need > 0 {
			if x >= l.lo && x <= l.hi {
				l.pend[l.n] = x
				l.n++
				l.need--
				l.lo, l.hi = 0x80, 0xBF
				if l.need == 0 {
					dst = append(dst, l.pend[:l.n]...)
					l.n = 0
				}
				continue
			}
			dst = append(dst, "\uFFFD"...)
			l.n, l.need = 0, 0
		}
		switch {
		case x < 0x80:
			dst = append(dst, x)
			continue
		case x >= 0xC2 && x <= 0xDF:
			l.need, l.lo, l.hi = 1, 0x80, 0xBF
		case x == 0xE0:
			l.need, l.lo, l.hi = 2, 0xA0, 0xBF
		case x == 0xED:
			l.need, l.lo, l.hi = 2, 0x80, 0x9F
		case x >= 0xE1 && x <= 0xEF:
			l.need, l.lo, l.hi = 2, 0x80, 0xBF
		case x == 0xF0:
			l.need, l.lo, l.hi = 3, 0x90, 0xBF
		case x >= 0xF1 && x <= 0xF3:
			l.need, l.lo, l.hi = 3, 0x80, 0xBF
		case x == 0xF4:
			l.need, l.lo, l.hi = 3, 0x80, 0x8F
		default:
			dst = append(dst, "\uFFFD"...)
			continue
		}
		l.pend[0] = x
		l.n = 1
	}
	return dst
}

func (l *lossyUTF8) flush(dst []byte) []byte {
	if l.n > 0 {
		dst = append(dst, "\uFFFD"...)
	}
	l.n, l.need = 0, 0
	return dst
}

// ---- public decoding API ----

// Decode converts ids back to text like the Hugging Face tokenizers library:
// token strings (added tokens by their content) run through the decoder
// chain; invalid UTF-8 becomes U+FFFD. skipSpecial drops special added
// tokens. An id that names no token returns an error wrapping ErrInvalidToken.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) (string, error) {
	c := t.newChain()
	for _, id := range ids {
		if err := t.feed(c, id, skipSpecial); err != nil {
			return "", err
		}
	}
	c.flush(0)
	return c.out.String(), nil
}

func (t *Tokenizer) feed(c *chain, id int32, skipSpecial bool) error {
	tok, ok := t.Token(id)
	if !ok {
		return fmt.Errorf("%w: %d (vocabulary size %d)", ErrInvalidToken, id, len(t.tokens))
	}
	if skipSpecial && t.special[id] {
		return nil
	}
	c.emit(0, chunk{text: tok, start: true, end: true})
	return nil
}

// StreamDecoder decodes ids one at a time for streaming generation. It never
// emits part of a UTF-8 character, and the concatenation of everything Add
// returned plus Flush equals Decode of all the ids. Text may be held back
// while it can still change (an incomplete character, a run of byte-fallback
// tokens, a trailing character a Strip decoder may remove). Not safe for
// concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	c           *chain
}

// NewDecoder returns a StreamDecoder; skipSpecial drops special added tokens.
func (t *Tokenizer) NewDecoder(skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{t: t, skipSpecial: skipSpecial, c: t.newChain()}
}

// Add decodes one more id and returns the text that became final (possibly
// ""). An invalid id returns an error wrapping ErrInvalidToken and leaves the
// decoder unchanged.
func (d *StreamDecoder) Add(id int32) (string, error) {
	if err := d.t.feed(d.c, id, d.skipSpecial); err != nil {
		return "", err
	}
	s := d.c.out.String()
	d.c.out.Reset()
	return s, nil
}

// Flush ends the stream: it returns the text still held back and resets the
// decoder for a new stream.
func (d *StreamDecoder) Flush() string {
	d.c.flush(0)
	s := d.c.out.String()
	d.c = d.t.newChain()
	return s
}
