package index

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/strata-p2p/strata/internal/index/corpus"
	"github.com/strata-p2p/strata/proto"
)

func tokens(s string) []string {
	t := newTokenizer(MinWordLen)
	t.add(s)
	var out []string
	for i := range t.n() {
		out = append(out, string(t.token(i)))
	}
	return out
}

func TestTokenize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{"Beyoncé - Halo.mp3", "beyonce halo mp3"},
		{"BEYONCE_-_halo.MP3", "beyonce halo mp3"},
		{"Motörhead – Ace of Spades (Live).flac", "motorhead ace of spades live flac"},
		{"Straße ẞ Æon Œuvre Søren Łódź Þór Đorđe", "strasse ss aeon oeuvre soren lodz thor dorde"},
		{"ﬁle ＡＢＣ x² ½", "file abc x2"},        // ligature, full width, superscript; "½" is 1⁄2, both one digit
		{"a b c 1 2 ab 12", "ab 12"},           // one-byte tokens dropped
		{"Σίσυφος ΣΟΦΟΣ", "σισυφοσ σοφοσ"},     // accents and final sigma
		{"Пётр Чайковский", "петр чаиковскии"}, // й loses its breve, like any mark
		{"東京 ラブストーリー", "東京 ラフストーリー"},           // dakuten is a mark too; no word splitting inside CJK
		{"don't stop", "don stop"},
		{"", ""},
		{"...", ""},
		{"e\u0301te\u0301", "ete"}, // already decomposed
		{"\xff\xfeab", "ab"},       // invalid UTF-8 separates
	} {
		if got := strings.Join(tokens(c.in), " "); got != c.want {
			t.Errorf("tokens(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseQueryCanonical(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Beatles Yesterday", "beatles yesterday"},
		{"yesterday BEATLES beatles", "beatles yesterday"},
		{"  Sigur Rós  ", "ros sigur"},
		{"AC/DC", "ac dc"},
		{"love size>10MB", "love size>10000000"},
		{"love size>=1.5GiB", "love size>=1610612736"},
		{"love size<1.5KiB size<1.5KiB", "love size<1536"},
		{"love size<1.1KiB", "love size<1127"}, // 1126.4 bytes: sizes below it are at most 1126
		{"love size>1.1KiB", "love size>1126"},
		{"love size<=1.1KiB", "love size<=1126"},
		{"love size>=1.1KiB", "love size>=1127"},
		{"love size>10", "love size>10"},
		{"love SIZE>10b", "love size>10"},
		{"love BITRATE>=128", "love bitrate>=128"},
		{"love bitrate>=128kbps bitrate<=320k", "love bitrate<=320 bitrate>=128"},
		{"love freq=44100", "love freq=44100"},
		{"love samplerate:44.1kHz", "love freq=44100"},
		{"love freq!=48000", "love freq!=48000"},
		{"love duration<300", "love duration<300"},
		{"love duration<3m20s", "love duration<200"},
		{"love duration<3:20", "love duration<200"},
		{"love duration<=1:02:03", "love duration<=3723"},
		{"love duration>1.5s", "love duration>1"},
		{"love ext:MP3 ext:.ogg ext:mp3", "love ext:mp3 ext:ogg"},
		{"love ext=flac", "love ext:flac"},
		{"love type:Audio type:video", "love type:audio type:video"},
		{"love type=audio", "love type:audio"},
		{`"size>10" love`, "10 love size"},
		{`love "type:audio"`, "audio love type"},
		{"Re:Zero", "re zero"},
		{"Star Wars: Episode IV", "episode iv star wars"},
		{"love <3 :)", "love"},
		{"a love", "love"},
		{"love bitrate>=128 size>1MB ext:mp3 type:audio", "love size>1000000 bitrate>=128 ext:mp3 type:audio"},
	} {
		q, err := ParseQuery(c.in)
		if err != nil {
			t.Errorf("ParseQuery(%q): %v", c.in, err)
			continue
		}
		if got := q.String(); got != c.want {
			t.Errorf("ParseQuery(%q).String() = %q, want %q", c.in, got, c.want)
		}
		q2, err := ParseQuery(q.String())
		if err != nil || !reflect.DeepEqual(q, q2) {
			t.Errorf("ParseQuery(%q) = %#v, %v; want %#v", q.String(), q2, err, q)
		}
	}
}

func TestParseQueryErrors(t *testing.T) {
	var squares string // 5 words of 5 squares, 80 bytes; ㌀ is アパート
	for r := rune(0x3300); r < 0x3319; r++ {
		if squares += string(r); (r-0x3300)%5 == 4 {
			squares += " "
		}
	}
	for _, c := range []struct {
		in   string
		kind error
		says string
	}{
		{"", ErrNoWords, "add at least one word"},
		{"size>10MB ext:mp3", ErrNoWords, "query has no words; add at least one word to search for"},
		{"a b c", ErrNoWords, "single letter"},
		{strings.Repeat("x", MaxQueryLen+1), ErrQueryTooLong, "over the cap of 256"},
		{squares, ErrQueryTooLong, "once normalised"},
		{"w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17", ErrTooManyWords, "17 words, over the cap of 16"},
		{"love \xff", ErrQuerySyntax, "UTF-8"},
		{"love size>10XB", ErrQuerySyntax, `unknown size unit "XB"`},
		{"love size>MB", ErrQuerySyntax, "not a number"},
		{"love size>1.2.3MB", ErrQuerySyntax, "not a number"},
		{"love size>99999999999999999999", ErrQuerySyntax, "too large"},
		{"love size>99999999999TB", ErrQuerySyntax, "too large"},
		{"love size=1.1KiB", ErrQuerySyntax, "not a whole number of bytes"},
		{"love bitrate>fast", ErrQuerySyntax, "unknown bitrate unit"},
		{"love bitrate>99999999999", ErrQuerySyntax, "out of range"},
		{"love duration<soon", ErrQuerySyntax, "not a duration"},
		{"love duration<3:75", ErrQuerySyntax, "below 60"},
		{"love bitrat>128", ErrQuerySyntax, `unknown filter "bitrat"`},
		{"love linespeed>=3", ErrQuerySyntax, "the filters are size, bitrate"},
		{"love size>", ErrQuerySyntax, "has no value"},
		{"love size > 10MB", ErrQuerySyntax, "without spaces"},
		{"love ext>mp3", ErrQuerySyntax, `ext takes ":"`},
		{"love ext:tar.gz", ErrQuerySyntax, "not a file extension"},
		{"love type:music", ErrQuerySyntax, "audio, video, image, document, archive, software"},
		{`love "unclosed`, ErrQuerySyntax, "unmatched quote"},
	} {
		q, err := ParseQuery(c.in)
		if err == nil {
			t.Errorf("ParseQuery(%q) = %q, want an error", c.in, q)
			continue
		}
		if !errors.Is(err, c.kind) {
			t.Errorf("ParseQuery(%q): error %q is not %v", c.in, err, c.kind)
		}
		if !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseQuery(%q): error %q does not say %q", c.in, err, c.says)
		}
	}
}

func mustParse(t testing.TB, s string) *Query {
	t.Helper()
	q, err := ParseQuery(s)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", s, err)
	}
	return q
}

func TestMatch(t *testing.T) {
	song := &proto.FileEntry{
		ContentID: proto.ContentID{1}, Name: "Sigur Rós - Hoppípolla.MP3", Size: 4_500_000,
		Media: proto.MediaAudio, Bitrate: 192, SampleRate: 44100, Duration: 268,
		Artist: "Sigur Rós", Title: "Hoppípolla", Album: "Takk...",
	}
	for _, c := range []struct {
		q    string
		want bool
	}{
		{"sigur ros", true},
		{"SIGUR RÓS", true},
		{"hoppipolla takk", true},             // tag only
		{"hoppipolla mp3", true},              // extension is a token
		{"hopp", false},                       // whole tokens only
		{"sigur ros hoppipolla bjork", false}, // every word
		{"sigur size>4MB", true},
		{"sigur size>4.5MB", false},
		{"sigur size>=4.5MB", true},
		{"sigur size<4MiB", false},
		{"sigur bitrate>=192 bitrate<=192", true},
		{"sigur bitrate!=192", false},
		{"sigur freq=44100", true},
		{"sigur freq=48000", false},
		{"sigur duration<4:30", true},
		{"sigur duration<4m", false},
		{"sigur ext:mp3", true},
		{"sigur ext:ogg ext:mp3", true},
		{"sigur ext:ogg", false},
		{"sigur type:audio", true},
		{"sigur type:video type:image", false},
	} {
		if got := mustParse(t, c.q).Match(song); got != c.want {
			t.Errorf("%q matches %q: got %v, want %v", c.q, song.Name, got, c.want)
		}
	}
	noExt := &proto.FileEntry{ContentID: proto.ContentID{2}, Name: ".mp3 README"}
	if mustParse(t, "readme ext:mp3").Match(noExt) {
		t.Errorf("ext:mp3 matches %q, which has no extension", noExt.Name)
	}
	if !mustParse(t, "readme bitrate=0 duration<1").Match(noExt) {
		t.Errorf("a file without a bitrate or duration should have them 0")
	}
}

func TestWords(t *testing.T) {
	q := mustParse(t, "Zebra apple size>1")
	w := q.Words()
	if !reflect.DeepEqual(w, []string{"apple", "zebra"}) {
		t.Fatalf("Words() = %q", w)
	}
	w[0] = "changed"
	if q.Words()[0] != "apple" {
		t.Fatal("Words() exposes the query's own slice")
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range corpus.Queries(1, 20) {
		f.Add(s)
	}
	for _, s := range []string{
		"beatles yesterday", "Sigur Rós Hoppípolla ext:mp3 bitrate>=192",
		"love size>10MB size<1GiB duration<3m20s freq=44100 type:audio",
		`"AC/DC" back in black ext:flac ext:mp3`, "Re:Zero", "love <3", "size > 10MB",
		"madonna samplerate:44.1kHz duration<=4:05", "東京 ラブストーリー", "ﬁle ＡＢＣ",
		"love size=1.1KiB", "love \xff", "x duration>1.000000001s", "ab\u0345cd ǅ ℌ İ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuery(s)
		if err != nil {
			if q != nil {
				t.Fatalf("ParseQuery(%q) returned a query and an error", s)
			}
			return
		}
		text := q.String()
		if len(text) > MaxQueryLen || !utf8.ValidString(text) {
			t.Fatalf("ParseQuery(%q).String() = %q: too long or not UTF-8", s, text)
		}
		q2, err := ParseQuery(text)
		if err != nil {
			t.Fatalf("ParseQuery(%q) (canonical form of %q): %v", text, s, err)
		}
		if !reflect.DeepEqual(q, q2) {
			t.Fatalf("ParseQuery(%q) = %#v, but its canonical form %q parses to %#v", s, q, text, q2)
		}
		if q2.String() != text {
			t.Fatalf("canonical form not stable: %q then %q", text, q2.String())
		}
		for _, w := range q.words {
			if got := tokens(w); len(got) != 1 || got[0] != w {
				t.Fatalf("word %q of %q does not normalise to itself: %q", w, s, got)
			}
		}
	})
}

// FuzzTokenize checks that normalising is idempotent: the tokens of the
// tokens are the tokens. Queries and stored names rely on it.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"Beyoncé Straße", "ﬁle ＡＢＣ x²", "ǅ ℌ İ ẞ", "東京 ラブ", "e\u0301\u0301", "Σίσυφος"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := tokens(s)
		twice := tokens(strings.Join(once, " "))
		if !reflect.DeepEqual(once, twice) {
			t.Fatalf("tokens(%q) = %q, but tokens of those = %q", s, once, twice)
		}
	})
}

func TestLongTokenCut(t *testing.T) {
	var s string
	for r := rune(0x3300); r < 0x3355; r++ {
		s += string(r) // 255 bytes that decompose to about 1,000
	}
	got := tokens(s)
	if len(got) != 1 || len(got[0]) > maxTokenLen || len(got[0]) < maxTokenLen-3 || !utf8.ValidString(got[0]) {
		t.Fatalf("tokens of 85 squares: %d tokens, first %d bytes", len(got), len(got[0]))
	}
	x := New()
	x.Add(1, &proto.FileEntry{ContentID: proto.ContentID{1}, Name: s})
	if hits := search(x, mustParse(t, s), 0); len(hits) != 1 {
		t.Fatalf("the name as a query found %d files, want 1", len(hits))
	}
}

func TestNoWordsHint(t *testing.T) {
	_, err := ParseQuery("size>10MB ext:mp3")
	if err == nil || err.Error() != "query has no words; add at least one word to search for" {
		t.Errorf("filters only: %v", err)
	}
	_, err = ParseQuery("a 1 size>10MB")
	if err == nil || !strings.Contains(err.Error(), "single letter or digit are ignored") {
		t.Errorf("short words only: %v", err)
	}
}
