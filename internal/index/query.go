package index

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/strata-p2p/strata/proto"
)

// Limits on a query. A supernode refuses queries over them, and ParseQuery
// holds the canonical form (Query.String) to the same limits so that a parsed
// query can always be forwarded and parsed again.
const (
	// MaxQueryLen is the longest query text, in bytes of UTF-8.
	MaxQueryLen = 256
	// MaxQueryWords is the most distinct words a query may have, counted
	// after normalisation.
	MaxQueryWords = 16
)

// Errors from ParseQuery wrap one of these, so that callers can map them to
// wire error codes with errors.Is. The message of the wrapping error says
// what was wrong and what to do.
var (
	ErrNoWords      = errors.New("query has no words; add at least one word to search for")
	ErrQueryTooLong = errors.New("query is too long")
	ErrTooManyWords = errors.New("query has too many words")
	ErrQuerySyntax  = errors.New("query syntax error")
)

type queryError struct {
	kind error
	msg  string
}

func (e *queryError) Error() string { return e.msg }
func (e *queryError) Unwrap() error { return e.kind }

func qerr(kind error, format string, args ...any) error {
	return &queryError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// field is a numeric attribute a filter can compare.
type field uint8

const (
	fieldSize field = iota
	fieldBitrate
	fieldFreq
	fieldDuration
)

// fieldNames are the canonical filter keys, as String writes them.
var fieldNames = [...]string{"size", "bitrate", "freq", "duration"}

// op is a comparison operator.
type op uint8

const (
	opEq op = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opColon // "key:value"; means opEq for numeric filters; never stored
)

var opText = [...]string{"=", "!=", "<", "<=", ">", ">=", ":"}

// numFilter is one numeric comparison, such as bitrate>=128.
type numFilter struct {
	field field
	op    op
	value uint64
}

func (f numFilter) match(v uint64) bool {
	switch f.op {
	case opEq:
		return v == f.value
	case opNe:
		return v != f.value
	case opLt:
		return v < f.value
	case opLe:
		return v <= f.value
	case opGt:
		return v > f.value
	default: // opGe
		return v >= f.value
	}
}

func cmpNumFilter(a, b numFilter) int {
	if a.field != b.field {
		return int(a.field) - int(b.field)
	}
	if a.op != b.op {
		return int(a.op) - int(b.op)
	}
	switch {
	case a.value < b.value:
		return -1
	case a.value > b.value:
		return 1
	}
	return 0
}

// Query is a parsed search: words that must all occur in a file's name or
// tags, and filters on its attributes. Build one with ParseQuery. A Query is
// immutable, so it is safe for concurrent use.
type Query struct {
	words []string          // normalised tokens, sorted, distinct; never empty once parsed
	nums  []numFilter       // sorted, distinct; all must hold
	exts  []string          // normalised extensions, sorted, distinct; any may match
	media []proto.MediaType // sorted, distinct; any may match
}

// Words returns the query's normalised words, sorted.
func (q *Query) Words() []string { return slices.Clone(q.words) }

// String returns the canonical text of the query: its normalised words in
// sorted order, then its filters with sizes in bytes and durations in
// seconds, for example "beatles yesterday size>3000000 ext:mp3". ParseQuery
// parses it back to an equal Query, so supernodes forward this text.
func (q *Query) String() string {
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
	}
	for _, w := range q.words {
		sep()
		b.WriteString(w)
	}
	for _, f := range q.nums {
		sep()
		b.WriteString(fieldNames[f.field])
		b.WriteString(opText[f.op])
		b.WriteString(strconv.FormatUint(f.value, 10))
	}
	for _, e := range q.exts {
		sep()
		b.WriteString("ext:")
		b.WriteString(e)
	}
	for _, m := range q.media {
		sep()
		b.WriteString("type:")
		b.WriteString(m.String())
	}
	return b.String()
}

// Match reports whether e satisfies the query: every word is a token of the
// name, artist, title or album, and every filter holds.
func (q *Query) Match(e *proto.FileEntry) bool {
	if !q.matchAttrs(e.Size, e.Bitrate, e.SampleRate, e.Duration, e.Media) || !matchExt(q.exts, e.Name) {
		return false
	}
	t := newTokenizer(MinWordLen)
	t.add(e.Name)
	t.add(e.Artist)
	t.add(e.Title)
	t.add(e.Album)
	for _, w := range q.words {
		if !t.has(w) {
			return false
		}
	}
	return true
}

// matchAttrs applies the numeric and media filters.
func (q *Query) matchAttrs(size uint64, bitrate, freq, duration uint32, media proto.MediaType) bool {
	for _, f := range q.nums {
		var v uint64
		switch f.field {
		case fieldSize:
			v = size
		case fieldBitrate:
			v = uint64(bitrate)
		case fieldFreq:
			v = uint64(freq)
		case fieldDuration:
			v = uint64(duration)
		}
		if !f.match(v) {
			return false
		}
	}
	return len(q.media) == 0 || slices.Contains(q.media, media)
}

// fileExt returns the text after the last dot of a file name, or an empty
// result if there is none or the dot starts the name (".profile").
func fileExt[S ~string | ~[]byte](name S) S {
	for i := len(name) - 1; i > 0; i-- {
		if name[i] == '.' {
			return name[i+1:]
		}
	}
	return name[:0]
}

// matchExt reports whether name's extension is one of exts (normalised), or
// exts is empty.
func matchExt[S ~string | ~[]byte](exts []string, name S) bool {
	if len(exts) == 0 {
		return true
	}
	ext := fileExt(name)
	if len(ext) == 0 {
		return false
	}
	ascii := true
	for i := 0; i < len(ext); i++ {
		if ext[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		n, ok := normExt(string(ext))
		return ok && slices.Contains(exts, n)
	}
	for _, want := range exts {
		if len(want) != len(ext) {
			continue
		}
		i := 0
		for ; i < len(ext); i++ {
			if asciiFold[ext[i]] != want[i] {
				break
			}
		}
		if i == len(ext) {
			return true
		}
	}
	return false
}

// normExt normalises an extension the way words are normalised, keeping
// one-character extensions ("c"). It fails unless the result is exactly one
// token.
func normExt(s string) (string, bool) {
	t := newTokenizer(1)
	t.add(s)
	if t.n() != 1 {
		return "", false
	}
	return string(t.token(0)), true
}

// filterKey reports whether k (in any case) is a filter key, whether the
// filter is numeric, and which field a numeric one compares. "freq" and
// "samplerate" are the same filter.
func filterKey(k string) (f field, numeric bool, known bool) {
	switch strings.ToLower(k) {
	case "size":
		return fieldSize, true, true
	case "bitrate":
		return fieldBitrate, true, true
	case "freq", "samplerate":
		return fieldFreq, true, true
	case "duration":
		return fieldDuration, true, true
	case "ext", "type":
		return 0, false, true
	}
	return 0, false, false
}

// errNotFilter tells ParseQuery that an item is words after all.
var errNotFilter = errors.New("not a filter")

const knownFilters = "size, bitrate, freq (or samplerate), duration, ext and type"

// parseOp splits an operator off the front of s.
func parseOp(s string) (op, string, bool) {
	for _, o := range []op{opLe, opGe, opNe, opLt, opGt, opEq, opColon} {
		if t, ok := strings.CutPrefix(s, opText[o]); ok {
			return o, t, true
		}
	}
	return 0, s, false
}

// ParseQuery parses the text of a search.
//
// Words are separated by anything that is not a letter or a digit, and are
// matched case- and accent-insensitively against whole tokens of a file's
// name (its extension included: "song.mp3" has the tokens "song" and "mp3")
// and of its artist, title and album tags: "beat" does not match "Beatles".
// All words must match. Words shorter than MinWordLen after normalisation
// are ignored. Text in double quotes is only ever words, never filters.
//
// Filters are written key, operator, value with no spaces, keys in any case:
//
//	size>10MB        units B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB,
//	                 TiB (powers of 1024); no unit means bytes
//	bitrate>=128     kbit/s
//	freq=44100       Hz (alias samplerate; "44.1kHz" also works)
//	duration<300     seconds; also 3m20s, 3:20 or 1:02:03
//	ext:mp3          the text after the last dot of the name
//	type:audio       a media type name (proto.ParseMediaType)
//
// An unknown key before a comparison ("bitrat>128") is an error; before a
// colon ("Re:Zero", "Star Wars: Episode IV") the item is taken as words.
// Numeric filters take =, !=, <, <=, >, >= (":" means "="); all of them must
// hold, and a file lacking an attribute has the value 0 for it. ext and type
// take ":" or "=" and may repeat: a file matches if any of the values does.
// A filter alone is not a query: at least one word is required.
func ParseQuery(text string) (*Query, error) {
	if len(text) > MaxQueryLen {
		return nil, qerr(ErrQueryTooLong, "query is %d bytes, over the cap of %d; shorten it", len(text), MaxQueryLen)
	}
	if !utf8.ValidString(text) {
		return nil, qerr(ErrQuerySyntax, "query is not valid UTF-8; send the text as UTF-8")
	}
	q := &Query{}
	words := newTokenizer(MinWordLen)
	short := newTokenizer(1) // the same words, short ones kept: to explain an empty query
	addWords := func(s string) {
		words.add(s)
		short.add(s)
	}
	prevKey := "" // the previous item, if it was a bare filter key
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		if unicode.IsSpace(r) {
			i += n
			continue
		}
		if r == '"' {
			j := strings.IndexByte(text[i+1:], '"')
			if j < 0 {
				return nil, qerr(ErrQuerySyntax, "query has an unmatched quote at byte %d; close it with another \"", i)
			}
			addWords(text[i+1 : i+1+j])
			i += j + 2
			prevKey = ""
			continue
		}
		j := i
		for j < len(text) {
			r, n := utf8.DecodeRuneInString(text[j:])
			if unicode.IsSpace(r) || r == '"' {
				break
			}
			j += n
		}
		item := text[i:j]
		i = j

		k := 0
		for k < len(item) && 'a' <= item[k]|0x20 && item[k]|0x20 <= 'z' {
			k++
		}
		key := item[:k]
		o, value, isFilter := parseOp(item[len(key):])
		if isFilter && o == opColon && key == "" {
			isFilter = false // ":)" and the like are words (of no letters)
		}
		if !isFilter {
			if _, _, known := filterKey(item); known {
				prevKey = item
			} else {
				prevKey = ""
			}
			addWords(item)
			continue
		}
		if key == "" {
			if prevKey != "" {
				return nil, qerr(ErrQuerySyntax, "query item %q follows %q: write a filter without spaces, for example size>10MB", item, prevKey)
			}
			addWords(item) // "<3", "=)": not filters
			continue
		}
		prevKey = ""
		if err := q.addFilter(item, key, o, value); err == errNotFilter {
			addWords(item)
		} else if err != nil {
			return nil, err
		}
	}

	for k := range words.n() {
		q.words = append(q.words, string(words.token(k)))
	}
	slices.Sort(q.words)
	q.words = slices.Compact(q.words)
	if len(q.words) == 0 {
		if short.n() > 0 {
			return nil, qerr(ErrNoWords, "%s (words of a single letter or digit are ignored)", ErrNoWords.Error())
		}
		return nil, ErrNoWords
	}
	if len(q.words) > MaxQueryWords {
		return nil, qerr(ErrTooManyWords, "query has %d words, over the cap of %d; remove some", len(q.words), MaxQueryWords)
	}
	slices.SortFunc(q.nums, cmpNumFilter)
	q.nums = slices.CompactFunc(q.nums, func(a, b numFilter) bool { return a == b })
	slices.Sort(q.exts)
	q.exts = slices.Compact(q.exts)
	slices.Sort(q.media)
	q.media = slices.Compact(q.media)
	if n := len(q.String()); n > MaxQueryLen {
		return nil, qerr(ErrQueryTooLong, "query is %d bytes once normalised, over the cap of %d; shorten it", n, MaxQueryLen)
	}
	return q, nil
}

// addFilter parses one filter item, already split into key, operator and value.
func (q *Query) addFilter(item, key string, o op, value string) error {
	f, numeric, known := filterKey(key)
	if !known {
		if o == opColon {
			return errNotFilter // "Re:Zero", "Wars:": words with a colon
		}
		return qerr(ErrQuerySyntax, "query item %q: unknown filter %q; the filters are %s; to search for the text itself, put it in double quotes", item, key, knownFilters)
	}
	if value == "" {
		return qerr(ErrQuerySyntax, "query item %q has no value; write a filter without spaces, for example size>10MB", item)
	}
	if !numeric {
		if o != opColon && o != opEq {
			return qerr(ErrQuerySyntax, "query item %q: %s takes \":\", for example ext:mp3 or type:audio", item, strings.ToLower(key))
		}
		if strings.EqualFold(key, "ext") {
			ext, ok := normExt(strings.TrimPrefix(value, "."))
			if !ok {
				return qerr(ErrQuerySyntax, "query item %q: %q is not a file extension; write one extension of letters and digits, for example ext:mp3", item, value)
			}
			q.exts = append(q.exts, ext)
			return nil
		}
		m, ok := proto.ParseMediaType(value)
		if !ok {
			return qerr(ErrQuerySyntax, "query item %q: unknown media type %q; use one of %s", item, value, mediaTypeNames())
		}
		q.media = append(q.media, m)
		return nil
	}
	if o == opColon {
		o = opEq
	}
	var (
		v     uint64
		exact bool
		err   error
	)
	limit := uint64(math.MaxUint32)
	switch f {
	case fieldSize:
		v, exact, err = parseUnits(value, sizeUnits, "size", "B, KB, MB, GB, TB, KiB, MiB, GiB or TiB")
		limit = math.MaxUint64
	case fieldBitrate:
		v, exact, err = parseUnits(value, bitrateUnits, "bitrate", "kbit/s, written as a plain number such as 128")
	case fieldFreq:
		v, exact, err = parseUnits(value, freqUnits, "freq", "Hz or kHz, for example 44100 or 44.1kHz")
	case fieldDuration:
		v, exact, err = parseDuration(value)
	}
	if err != nil {
		return qerr(ErrQuerySyntax, "query item %q: %v", item, err)
	}
	if !exact {
		// Attributes are whole numbers: round the bound so the comparison
		// keeps its meaning (size<1.5 means size<2; size>1.5 means size>1).
		switch o {
		case opEq, opNe:
			return qerr(ErrQuerySyntax, "query item %q: %s is not a whole number of %s; use < or > to compare with it", item, value, map[field]string{fieldSize: "bytes", fieldFreq: "Hz", fieldDuration: "seconds", fieldBitrate: "kbit/s"}[f])
		case opLt, opGe:
			if v == math.MaxUint64 {
				return qerr(ErrQuerySyntax, "query item %q: %s is too large", item, value)
			}
			v++
		}
	}
	if v > limit {
		return qerr(ErrQuerySyntax, "query item %q: %s is out of range (at most %d)", item, value, limit)
	}
	q.nums = append(q.nums, numFilter{field: f, op: o, value: v})
	return nil
}

func mediaTypeNames() string {
	var names []string
	for m := proto.MediaType(0); ; m++ {
		if _, ok := proto.ParseMediaType(m.String()); !ok {
			break
		}
		names = append(names, m.String())
	}
	return strings.Join(names, ", ")
}

// unit is a suffix a number may carry and what it multiplies by.
type unit struct {
	name string // lowercase
	mul  uint64
}

var (
	sizeUnits = []unit{
		{"", 1}, {"b", 1},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	}
	bitrateUnits = []unit{{"", 1}, {"k", 1}, {"kbps", 1}, {"kbit/s", 1}}
	freqUnits    = []unit{{"", 1}, {"hz", 1}, {"khz", 1000}}
)

// parseUnits parses a decimal number with an optional fraction and unit
// ("1.5GB") and returns its value rounded down, and whether that is exact.
func parseUnits(s string, units []unit, what, unitHelp string) (uint64, bool, error) {
	end := 0
	for end < len(s) && ('0' <= s[end] && s[end] <= '9' || s[end] == '.') {
		end++
	}
	num, suffix := s[:end], strings.ToLower(s[end:])
	i := slices.IndexFunc(units, func(u unit) bool { return u.name == suffix })
	if i < 0 {
		return 0, false, fmt.Errorf("unknown %s unit %q; use %s", what, s[end:], unitHelp)
	}
	mul := units[i].mul
	whole, frac, _ := strings.Cut(num, ".")
	if whole == "" || strings.Contains(frac, ".") || (strings.Contains(num, ".") && frac == "") {
		return 0, false, fmt.Errorf("%s %q is not a number; use digits, for example %s", what, s, map[string]string{"size": "10MB", "bitrate": "128", "freq": "44100"}[what])
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("%s %q is too large", what, s)
	}
	hi, v := bits.Mul64(w, mul)
	if hi != 0 {
		return 0, false, fmt.Errorf("%s %q is too large", what, s)
	}
	exact := true
	if len(frac) > 18 {
		// Digits beyond these cannot change the whole part of the result.
		exact = strings.Trim(frac[18:], "0") == ""
		frac = frac[:18]
	}
	if frac != "" {
		f, _ := strconv.ParseUint(frac, 10, 64)
		div := uint64(1)
		for range len(frac) {
			div *= 10
		}
		fh, fl := bits.Mul64(f, mul)
		part, rem := bits.Div64(fh, fl, div) // fh < div since f < div
		exact = exact && rem == 0
		var carry uint64
		v, carry = bits.Add64(v, part, 0)
		if carry != 0 {
			return 0, false, fmt.Errorf("%s %q is too large", what, s)
		}
	}
	return v, exact, nil
}

// parseDuration parses seconds ("300"), clock form ("3:20", "1:02:03") or a
// Go duration ("3m20s", "1h"), and returns whole seconds rounded down and
// whether that is exact.
func parseDuration(s string) (uint64, bool, error) {
	bad := fmt.Errorf("duration %q is not a duration; use seconds (300), minutes and seconds (3:20) or 3m20s", s)
	if strings.Contains(s, ":") {
		parts := strings.Split(s, ":")
		if len(parts) > 3 {
			return 0, false, bad
		}
		var total uint64
		for i, p := range parts {
			if p == "" || strings.Trim(p, "0123456789") != "" || len(p) > 9 {
				return 0, false, bad
			}
			n, _ := strconv.ParseUint(p, 10, 64)
			if i > 0 && n >= 60 {
				return 0, false, fmt.Errorf("duration %q: minutes and seconds after a colon must be below 60", s)
			}
			total = total*60 + n
		}
		return total, true, nil
	}
	if strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("duration %q is too large", s)
		}
		return n, true, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, false, bad
	}
	return uint64(d / time.Second), d%time.Second == 0, nil
}
