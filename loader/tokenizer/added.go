package tokenizer

import (
	"unicode/utf8"
)

type addedToken struct {
	id                         int32
	content                    string
	singleWord, lstrip, rstrip bool
	normalized                 bool
	matchText                  string // content, normalized when normalized is set
}

// trie is a byte trie for leftmost-longest matching of added tokens.
type trie struct {
	nodes []trieNode
}

type trieNode struct {
	next map[byte]int32
	tok  int32 // index into addedVocab.toks, -1 if none
}

func (t *trie) insert(s string, tok int32) {
	if len(t.nodes) == 0 {
		t.nodes = append(t.nodes, trieNode{tok: -1})
	}
	n := int32(0)
	for i := 0; i < len(s); i++ {
		nx, ok := t.nodes[n].next[s[i]]
		if !ok {
			if t.nodes[n].next == nil {
				t.nodes[n].next = make(map[byte]int32)
			}
			nx = int32(len(t.nodes))
			t.nodes[n].next[s[i]] = nx
			t.nodes = append(t.nodes, trieNode{tok: -1})
		}
		n = nx
	}
	t.nodes[n].tok = tok
}

// longest returns the index and length of the longest token starting at s[0].
func (t *trie) longest(s string) (tok int32, n int) {
	tok, node := -1, int32(0)
	for i := 0; i < len(s); i++ {
		nx, ok := t.nodes[node].next[s[i]]
		if !ok {
			break
		}
		node = nx
		if t.nodes[node].tok >= 0 {
			tok, n = t.nodes[node].tok, i+1
		}
	}
	return tok, n
}

// addedVocab finds added tokens in text.
type addedVocab struct {
	toks       []addedToken
	raw, normd trie // tokens with normalized=false / normalized=true
}

func newAddedVocab(toks []addedToken, n normalizer) addedVocab {
	av := addedVocab{toks: toks}
	for i := range av.toks {
		tk := &av.toks[i]
		tk.matchText = tk.content
		if tk.normalized {
			if n != nil {
				tk.matchText = n.normalize(tk.content)
			}
			if tk.matchText != "" {
				av.normd.insert(tk.matchText, int32(i))
			}
		} else {
			av.raw.insert(tk.matchText, int32(i))
		}
	}
	return av
}

// split splits text into added tokens and normalized pieces between them:
// first tokens with normalized=false on the raw text, then each remaining
// piece is normalized and searched for tokens with normalized=true.
func (av *addedVocab) split(dst []piece, text string, n normalizer) []piece {
	raw := av.find(nil, text, &av.raw, true)
	for _, p := range raw {
		if p.id >= 0 {
			dst = append(dst, p)
			continue
		}
		s := p.s
		if n != nil {
			s = n.normalize(s)
		}
		dst = av.find(dst, s, &av.normd, p.first)
	}
	return dst
}

// find appends the splits of s by the tokens of tr (non-empty pieces only).
func (av *addedVocab) find(dst []piece, s string, tr *trie, first bool) []piece {
	if len(tr.nodes) == 0 {
		if s != "" {
			dst = append(dst, piece{s: s, id: -1, first: first})
		}
		return dst
	}
	startOff := 0
	emit := func(a, b int) {
		if b > a {
			dst = append(dst, piece{s: s[a:b], id: -1, first: first && a == 0})
		}
	}
	for i := 0; i < len(s); {
		ti, n := tr.longest(s[i:])
		if ti < 0 {
			i++
			continue
		}
		tk := &av.toks[ti]
		start, stop := i, i+n
		i = stop
		if tk.singleWord {
			if start > 0 {
				r, _ := utf8.DecodeLastRuneInString(s[:start])
				if isWordChar(r) {
					continue
				}
			}
			if stop < len(s) {
				r, _ := utf8.DecodeRuneInString(s[stop:])
				if isWordChar(r) {
					continue
				}
			}
		}
		if tk.lstrip {
			ns := start
			for ns > 0 {
				r, sz := utf8.DecodeLastRuneInString(s[:ns])
				if !isWhiteSpace(r) {
					break
				}
				ns -= sz
			}
			start = max(ns, startOff)
		}
		if tk.rstrip {
			for stop < len(s) {
				r, sz := utf8.DecodeRuneInString(s[stop:])
				if !isWhiteSpace(r) {
					break
				}
				stop += sz
			}
			i = stop
		}
		emit(startOff, start)
		dst = append(dst, piece{s: s[start:stop], id: tk.id})
		startOff = stop
	}
	emit(startOff, len(s))
	return dst
}
