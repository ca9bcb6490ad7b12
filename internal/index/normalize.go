package index

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// MinWordLen is the shortest token, in bytes of normalised UTF-8, that is
// indexed or searched for. Shorter tokens (a single ASCII letter or digit
// such as "a" or the "1" of "Vol 1") are dropped from file names and from
// queries alike; a single non-ASCII letter (a CJK ideograph, "ß" → "ss") is
// two or more bytes and is kept.
const MinWordLen = 2

// asciiFold maps an ASCII byte to its token form: lowercase letters and
// digits map to themselves, uppercase letters to lowercase, everything else
// to 0 (a separator). It is constant data, built once.
var asciiFold = func() (t [128]byte) {
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c
	}
	for c := byte('a'); c <= 'z'; c++ {
		t[c] = c
		t[c-'a'+'A'] = c
	}
	return t
}()

// specialFold spells out lowercase letters that have no decomposition but
// that people type in ASCII. It returns "" for every other rune.
func specialFold(r rune) string {
	switch r {
	case 'ß':
		return "ss"
	case 'æ':
		return "ae"
	case 'œ':
		return "oe"
	case 'ø':
		return "o"
	case 'đ', 'ð':
		return "d"
	case 'ł':
		return "l"
	case 'þ':
		return "th"
	case 'ı':
		return "i"
	case 'ħ':
		return "h"
	case 'ŧ':
		return "t"
	case 'ς': // Greek final sigma matches the ordinary sigma
		return "σ"
	}
	return ""
}

// tokenizer splits text into normalised tokens:
//
//   - compatibility decomposition (NFKD, which includes NFD and also folds
//     ligatures, full-width forms and superscripts; Hangul syllables are
//     left composed),
//   - combining marks (Unicode Mn and Me) dropped, so "é" matches "e",
//   - lowercase, and a few letters spelt out ("ß" → "ss", "æ" → "ae"),
//   - split on every rune that is not a letter, a digit or a spacing mark
//     (Mc, which Indic scripts use inside words),
//   - tokens shorter than minLen bytes dropped.
//
// Tokens are stored back to back in buf; ends[i] is the end of token i, and
// token i starts where token i-1 ends. Buffers are reused between uses, so a
// tokenizer is not safe for concurrent use.
type tokenizer struct {
	minLen int
	buf    []byte
	ends   []int32
}

func newTokenizer(minLen int) tokenizer { return tokenizer{minLen: minLen} }

func (t *tokenizer) reset() {
	t.buf = t.buf[:0]
	t.ends = t.ends[:0]
}

// n returns the number of tokens.
func (t *tokenizer) n() int { return len(t.ends) }

// token returns token i. It aliases the tokenizer's buffer.
func (t *tokenizer) token(i int) []byte {
	start := int32(0)
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.buf[start:t.ends[i]]
}

// has reports whether w is one of the tokens.
func (t *tokenizer) has(w string) bool {
	start := int32(0)
	for _, end := range t.ends {
		if string(t.buf[start:end]) == w {
			return true
		}
		start = end
	}
	return false
}

// maxTokenLen caps a token, in bytes. A name is at most 255 bytes, but
// compatibility decomposition can lengthen it ("㌀" is "アパート"); longer
// tokens are cut at a rune boundary, the same way in names and queries.
const maxTokenLen = 255

// end closes the token that began at start, dropping it if it is too short.
func (t *tokenizer) end(start int) {
	n := len(t.buf) - start
	if n < t.minLen || n == 0 {
		t.buf = t.buf[:start]
		return
	}
	if n > maxTokenLen {
		cut := start + maxTokenLen
		for !utf8.RuneStart(t.buf[cut]) {
			cut--
		}
		t.buf = t.buf[:cut]
	}
	t.ends = append(t.ends, int32(len(t.buf)))
}

// add appends the tokens of s. Text is separated from text added before, so
// the last token of one field never runs into the first of the next.
func (t *tokenizer) add(s string) {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			start := len(t.buf)
			for i := 0; i < len(s); {
				r, n := utf8.DecodeRuneInString(s[i:])
				if r == utf8.RuneError && n == 1 {
					t.end(start) // invalid UTF-8 separates words
					start = len(t.buf)
				} else {
					start = t.decompose(r, norm.NFKD.PropertiesString(s[i:]), start)
				}
				i += n
			}
			t.end(start)
			return
		}
	}
	addASCII(t, s)
}

// addBytes is add for text in a byte slice.
func (t *tokenizer) addBytes(b []byte) {
	for i := 0; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			start := len(t.buf)
			for i := 0; i < len(b); {
				r, n := utf8.DecodeRune(b[i:])
				if r == utf8.RuneError && n == 1 {
					t.end(start)
					start = len(t.buf)
				} else {
					start = t.decompose(r, norm.NFKD.Properties(b[i:]), start)
				}
				i += n
			}
			t.end(start)
			return
		}
	}
	addASCII(t, b)
}

// decompose adds rune r, whose NFKD properties are p, to the token that
// began at start, and returns where the current token now begins. Runes are
// decomposed one at a time: the canonical reordering NFKD would apply to a
// whole string only moves combining marks, which are dropped.
func (t *tokenizer) decompose(r rune, p norm.Properties, start int) int {
	d := p.Decomposition()
	if d == nil {
		return t.rune(r, start, 0)
	}
	for len(d) > 0 {
		r, n := utf8.DecodeRune(d)
		start = t.rune(r, start, 0)
		d = d[n:]
	}
	return start
}

// addASCII is the fast path of add, for text that is all ASCII.
func addASCII[S string | []byte](t *tokenizer, s S) {
	start := len(t.buf)
	for i := 0; i < len(s); i++ {
		if c := asciiFold[s[i]]; c != 0 {
			t.buf = append(t.buf, c)
		} else if len(t.buf) > start {
			t.end(start)
			start = len(t.buf)
		}
	}
	t.end(start)
}

// rune adds one rune of decomposed text to the token that began at start and
// returns where the current token now begins.
func (t *tokenizer) rune(r rune, start, depth int) int {
	if r < utf8.RuneSelf {
		if c := asciiFold[r]; c != 0 {
			t.buf = append(t.buf, c)
			return start
		}
		t.end(start)
		return len(t.buf)
	}
	if unicode.In(r, unicode.Mn, unicode.Me) {
		return start // a combining mark: dropped, the word goes on
	}
	if l := unicode.ToLower(r); l != r {
		r = l
		if r < utf8.RuneSelf {
			return t.rune(r, start, depth)
		}
		// A lowercase letter can have a decomposition its uppercase form
		// lacked; decompose again so that normalising is idempotent.
		var one [utf8.UTFMax]byte
		if d := norm.NFKD.Properties(one[:utf8.EncodeRune(one[:], r)]).Decomposition(); d != nil && depth < 3 {
			for len(d) > 0 {
				r, n := utf8.DecodeRune(d)
				start = t.rune(r, start, depth+1)
				d = d[n:]
			}
			return start
		}
	}
	if f := specialFold(r); f != "" {
		t.buf = append(t.buf, f...)
		return start
	}
	if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mc, r) {
		t.buf = utf8.AppendRune(t.buf, r)
		return start
	}
	t.end(start)
	return len(t.buf)
}
