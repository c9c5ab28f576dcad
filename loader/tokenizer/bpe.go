package tokenizer

import (
	"sync"
	"unicode/utf8"
)

// bpe is the byte-pair-encoding model.
type bpe struct {
	vocab        map[string]int32
	tokens       []string // id → token
	has          []bool
	merges       map[uint64]mergeVal // (left id, right id) → rank, merged id
	prefix       string              // continuing_subword_prefix
	suffix       string              // end_of_word_suffix
	unk          int32               // -1: none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	byteIDs      [256]int32 // byte fallback ids ("<0xAB>"), -1 if absent
	cache        *wordCache

	// rawBytes: words arrive as raw text and each byte stands for its
	// byte-level character (the ByteLevel pre-tokenizer's mapping is done
	// here, which saves building the mapped strings). blIDs[b] is the id of
	// byte b's character, -1 if the vocabulary lacks it.
	rawBytes bool
	blIDs    [256]int32
}

// enableRawBytes turns on rawBytes (only valid without subword prefix/suffix).
func (b *bpe) enableRawBytes() {
	b.rawBytes = true
	for i := range b.blIDs {
		b.blIDs[i] = -1
		if id, ok := b.vocab[byteStr[i]]; ok {
			b.blIDs[i] = id
		}
	}
}

type mergeVal struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// symbol is one node of the doubly linked list of a word being merged.
type symbol struct {
	id         int32
	prev, next int32 // -1: none
	dead       bool
}

// mergeCand is a candidate merge of the symbol at pos with its successor.
type mergeCand struct {
	rank, pos, id int32
}

func candLess(a, b mergeCand) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.pos < b.pos
}

// candHeap is a binary min-heap by (rank, pos).
type candHeap []mergeCand

func (h *candHeap) push(c mergeCand) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !candLess(s[i], s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() mergeCand {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && candLess(s[r], s[l]) {
			m = r
		}
		if !candLess(s[m], s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// encode appends the ids of one pre-token.
func (b *bpe) encode(dst []int32, w string) []int32 {
	if w == "" {
		return dst
	}
	if b.ignoreMerges {
		key := w
		if b.rawBytes {
			key = byteLevelString(w)
		}
		if id, ok := b.vocab[key]; ok {
			return append(dst, id)
		}
	}
	cacheable := len(w) < maxCachedWord
	if cacheable {
		if ids, ok := b.cache.get(w); ok {
			return append(dst, ids...)
		}
	}
	n := len(dst)
	dst = b.mergeWord(dst, w)
	if cacheable {
		b.cache.put(w, dst[n:])
	}
	return dst
}

// mergeWord splits w into characters (with byte fallback / unk handling) and
// applies merges by rank, lowest first (ties: leftmost), like the Rust library.
func (b *bpe) mergeWord(dst []int32, w string) []int32 {
	syms := make([]symbol, 0, len(w))
	add := func(id int32) {
		syms = append(syms, symbol{id: id, prev: int32(len(syms)) - 1, next: -1})
	}
	if b.rawBytes {
		for i := 0; i < len(w); i++ {
			id := b.blIDs[w[i]]
			if id < 0 {
				syms = syms[:0]
				w = byteLevelString(w) // rare: take the general path
				break
			}
			add(id)
		}
		if len(syms) == len(w) {
			return b.merge(dst, syms)
		}
	}
	unk := int32(-1) // pending unknown
	for i := 0; i < len(w); {
		_, size := utf8.DecodeRuneInString(w[i:])
		s := w[i : i+size]
		first, last := i == 0, i+size == len(w)
		i += size
		if (!first && b.prefix != "") || (last && b.suffix != "") {
			if !first {
				s = b.prefix + s
			}
			if last {
				s += b.suffix
			}
		}
		if id, ok := b.vocab[s]; ok {
			if unk >= 0 {
				add(unk)
				unk = -1
			}
			add(id)
			continue
		}
		if b.byteFallback {
			ok := true
			for j := 0; j < len(s); j++ {
				if b.byteIDs[s[j]] < 0 {
					ok = false
					break
				}
			}
			if ok {
				// As in the Rust library, a pending unk is not flushed here.
				for j := 0; j < len(s); j++ {
					add(b.byteIDs[s[j]])
				}
				continue
			}
		}
		if b.unk >= 0 {
			if unk >= 0 && !b.fuseUnk {
				add(unk)
			}
			unk = b.unk
		}
	}
	if unk >= 0 {
		add(unk)
	}
	return b.merge(dst, syms)
}

// merge applies the merges to syms and appends the resulting ids.
func (b *bpe) merge(dst []int32, syms []symbol) []int32 {
	for k := range syms {
		if k+1 < len(syms) {
			syms[k].next = int32(k + 1)
		}
	}
	if len(syms) > 1 && len(b.merges) > 0 {
		h := make(candHeap, 0, len(syms))
		for k := 0; k+1 < len(syms); k++ {
			if m, ok := b.merges[pairKey(syms[k].id, syms[k+1].id)]; ok {
				h.push(mergeCand{rank: m.rank, pos: int32(k), id: m.id})
			}
		}
		for len(h) > 0 {
			c := h.pop()
			cur := &syms[c.pos]
			if cur.dead || cur.next < 0 {
				continue
			}
			nx := cur.next
			m, ok := b.merges[pairKey(cur.id, syms[nx].id)]
			if !ok || m.id != c.id {
				continue // stale candidate
			}
			cur.id = c.id
			syms[nx].dead = true
			cur.next = syms[nx].next
			if cur.next >= 0 {
				syms[cur.next].prev = c.pos
			}
			if cur.prev >= 0 {
				if m, ok := b.merges[pairKey(syms[cur.prev].id, cur.id)]; ok {
					h.push(mergeCand{rank: m.rank, pos: cur.prev, id: m.id})
				}
			}
			if cur.next >= 0 {
				if m, ok := b.merges[pairKey(cur.id, syms[cur.next].id)]; ok {
					h.push(mergeCand{rank: m.rank, pos: c.pos, id: m.id})
				}
			}
		}
	}
	for k := 0; k >= 0 && k < len(syms); k = int(syms[k].next) {
		dst = append(dst, syms[k].id)
		if syms[k].next < 0 {
			break
		}
	}
	return dst
}

// ---- word cache ----

const (
	maxCachedWord = 256   // bytes, like the Rust library
	cacheCapacity = 10000 // words
)

// wordCache memoizes the ids of frequent words; safe for concurrent use.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int32
}

func newWordCache() *wordCache { return &wordCache{m: make(map[string][]int32)} }

func (c *wordCache) get(w string) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	c.mu.Lock()
	if len(c.m) < cacheCapacity {
		c.m[w] = append([]int32(nil), ids...)
	}
	c.mu.Unlock()
}
