// Package corpus generates synthetic shared-file lists for tests and
// benchmarks of the keyword index: file names and tags over a Zipf-distributed
// vocabulary, with plausible sizes, bitrates, sample rates and durations.
//
// Everything is deterministic: the same seed gives the same files and
// queries on every machine and Go version (math/rand/v2's PCG and Zipf are
// specified). The vocabulary itself is fixed, independent of the seed, so
// queries generated with one seed find files generated with another.
//
// The mix, roughly: 55% audio (three quarters MP3; 70% of audio files carry
// artist/title/album tags), 15% video, 10% images, 10% documents, 5%
// archives, 5% software. Names average about 53 bytes. One file in ten is a
// copy (same content ID, name and tags) of a file generated a multiple of
// MinCopyDistance files earlier, as popular files are shared by many peers.
package corpus

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"

	"github.com/strata-p2p/strata/proto"
)

// VocabularySize is the number of distinct words names are drawn from.
const VocabularySize = 60000

// MinCopyDistance is the least distance between identical files in a
// generated list: assigning files to owners in runs of at most this many
// never gives an owner the same file twice.
const MinCopyDistance = 5000

// commonWords take the top ranks of the vocabulary, so that the most frequent
// tokens look like those of real file names.
var commonWords = []string{
	"the", "of", "love", "my", "you", "me", "in", "live", "remix", "feat",
	"and", "night", "mix", "original", "version", "best", "edit", "dance",
	"to", "is", "on", "heart", "remastered", "club", "radio", "life", "time",
	"world", "girl", "baby", "day", "dream", "part", "song", "one", "all",
	"no", "man", "good", "from", "for", "way", "your", "bad", "acoustic",
	"we", "blue", "fire", "soul", "home", "light", "never", "little", "new",
	"black", "king", "world", "summer", "city", "band", "extended", "deluxe",
	"instrumental", "demo", "session", "symphony", "concerto", "suite",
}

var (
	onsets  = []string{"b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "ch", "st", "tr", "sh", "kr", "gl", "pl", "th", "sk"}
	vowels  = []string{"a", "e", "i", "o", "u", "a", "e", "o", "y", "ai", "ou", "ee", "ia"}
	codas   = []string{"", "", "", "n", "r", "s", "l", "m", "t", "x", "nd", "ck"}
	accents = map[byte]string{'a': "á", 'e': "é", 'i': "í", 'o': "ö", 'u': "ü", 'y': "ÿ"}
)

// vocabulary builds the fixed word list, most frequent first.
func vocabulary() []string {
	r := rand.New(rand.NewPCG(0x5717a7a, 0xc0ffee))
	seen := make(map[string]bool, VocabularySize)
	words := make([]string, 0, VocabularySize)
	for _, w := range commonWords {
		if !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	for len(words) < VocabularySize {
		var b strings.Builder
		for range 1 + r.IntN(2) + r.IntN(2) {
			b.WriteString(onsets[r.IntN(len(onsets))])
			b.WriteString(vowels[r.IntN(len(vowels))])
		}
		b.WriteString(codas[r.IntN(len(codas))])
		w := b.String()
		if len(w) < 3 || seen[w] {
			continue
		}
		seen[w] = true
		if r.IntN(25) == 0 { // one word in 25 carries an accent
			for i := 0; i < len(w); i++ {
				if a, ok := accents[w[i]]; ok {
					w = w[:i] + a + w[i+1:]
					break
				}
			}
		}
		words = append(words, w)
	}
	return words
}

// gen is a seeded generator over the fixed vocabulary.
type gen struct {
	r       *rand.Rand
	vocab   []string
	word    *rand.Zipf // rank of a vocabulary word
	artist  *rand.Zipf // rank of an artist
	artists []string
	used    []string // vocabulary words put into the current file
}

func newGen(seed int64) *gen {
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	g := &gen{
		r:     r,
		vocab: vocabulary(),
		word:  rand.NewZipf(r, 1.05, 20, VocabularySize-1),
	}
	// The artist pool is fixed too: built from its own seed.
	ar := rand.New(rand.NewPCG(0xa7715, 0x7))
	az := rand.NewZipf(ar, 1.05, 10, VocabularySize-1)
	g.artists = make([]string, 20000)
	for i := range g.artists {
		n := 1 + ar.IntN(3)
		parts := make([]string, n)
		for j := range parts {
			parts[j] = titleCase(g.vocab[az.Uint64()])
		}
		if n == 1 && ar.IntN(3) == 0 {
			parts = append([]string{"The"}, parts...)
		}
		g.artists[i] = strings.Join(parts, " ")
	}
	g.artist = rand.NewZipf(r, 1.1, 20, uint64(len(g.artists)-1))
	return g
}

func titleCase(w string) string {
	r, n := utf8.DecodeRuneInString(w)
	return strings.ToUpper(string(r)) + w[n:]
}

// words returns n Zipf-drawn vocabulary words, remembering them in g.used.
func (g *gen) words(n int) []string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = g.vocab[g.word.Uint64()]
		g.used = append(g.used, ws[i])
	}
	return ws
}

func (g *gen) pickArtist() string {
	a := g.artists[g.artist.Uint64()]
	for _, w := range strings.Fields(a) {
		g.used = append(g.used, strings.ToLower(w))
	}
	return a
}

func (g *gen) titled(n int) string {
	ws := g.words(n)
	for i, w := range ws {
		ws[i] = titleCase(w)
	}
	return strings.Join(ws, " ")
}

// pick returns one of choices with the given weights.
func pick[T any](r *rand.Rand, choices []T, weights []int) T {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return choices[i]
		}
		n -= w
	}
	return choices[len(choices)-1]
}

func (g *gen) cid() proto.ContentID {
	var c proto.ContentID
	for i := 0; i < len(c); i += 8 {
		v := g.r.Uint64()
		for j := range 8 {
			c[i+j] = byte(v >> (8 * j))
		}
	}
	return c
}

// file generates one file; g.used collects the vocabulary words it used.
func (g *gen) file() proto.FileEntry {
	g.used = g.used[:0]
	e := proto.FileEntry{ContentID: g.cid()}
	switch n := g.r.IntN(100); {
	case n < 55:
		g.audio(&e)
	case n < 70:
		g.video(&e)
	case n < 80:
		g.image(&e)
	case n < 90:
		g.document(&e)
	case n < 95:
		g.archive(&e)
	default:
		g.software(&e)
	}
	if len(e.Name) > proto.MaxNameLen { // keep the end, with the extension
		cut := len(e.Name) - proto.MaxNameLen
		for !utf8.RuneStart(e.Name[cut]) {
			cut++
		}
		e.Name = e.Name[cut:]
	}
	return e
}

func (g *gen) audio(e *proto.FileEntry) {
	r := g.r
	e.Media = proto.MediaAudio
	artist := g.pickArtist()
	title := g.titled(2 + r.IntN(5))
	switch r.IntN(6) {
	case 0:
		title += " (" + titleCase(g.words(1)[0]) + " Remix)"
	case 1:
		title += " (feat. " + g.pickArtist() + ")"
	}
	album := g.titled(1 + r.IntN(3))
	track := 1 + r.IntN(16)
	ext := pick(r, []string{"mp3", "flac", "ogg", "m4a", "wav", "wma"}, []int{75, 8, 5, 7, 3, 2})
	var name string
	switch r.IntN(10) {
	case 0, 1, 2:
		name = fmt.Sprintf("%s - %s.%s", artist, title, ext)
	case 3, 4:
		name = fmt.Sprintf("%02d - %s - %s.%s", track, artist, title, ext)
	case 5, 6, 7:
		name = fmt.Sprintf("%s - %s - %02d - %s.%s", artist, album, track, title, ext)
	case 8:
		name = strings.ToLower(strings.ReplaceAll(artist+" - "+title, " ", "_")) + "." + ext
	default:
		name = fmt.Sprintf("%02d %s.%s", track, title, ext)
	}
	e.Name = name
	if r.IntN(10) < 7 {
		e.Artist, e.Title, e.Album = clip(artist), clip(title), clip(album)
	}
	switch ext {
	case "flac":
		e.Bitrate = uint32(700 + r.IntN(400))
	case "wav":
		e.Bitrate = 1411
	case "ogg":
		e.Bitrate = pick(r, []uint32{160, 192, 224}, []int{2, 2, 1})
	default:
		e.Bitrate = pick(r, []uint32{96, 128, 160, 192, 256, 320}, []int{5, 35, 5, 20, 10, 25})
	}
	e.SampleRate = pick(r, []uint32{44100, 48000, 22050, 32000, 96000}, []int{88, 8, 2, 1, 1})
	e.Duration = uint32(max(30, 230+r.NormFloat64()*70))
	e.Size = uint64(e.Bitrate)*1000/8*uint64(e.Duration) + uint64(r.IntN(200_000))
}

func clip(s string) string {
	for len(s) > proto.MaxTagLen {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

func (g *gen) video(e *proto.FileEntry) {
	r := g.r
	e.Media = proto.MediaVideo
	title := strings.ReplaceAll(g.titled(2+r.IntN(4)), " ", ".")
	year := 1960 + r.IntN(66)
	ext := pick(r, []string{"mkv", "avi", "mp4"}, []int{5, 3, 2})
	res := pick(r, []string{"720p.BluRay", "1080p.BluRay", "1080p.WEB-DL", "2160p.WEB-DL", "DVDRip", "HDTV"}, []int{3, 3, 2, 1, 2, 1})
	codec := pick(r, []string{"x264", "x265", "XviD", "H264"}, []int{5, 2, 2, 1})
	group := strings.ToUpper(g.words(1)[0])
	if r.IntN(3) == 0 {
		e.Name = fmt.Sprintf("%s.S%02dE%02d.%s.%s-%s.%s", title, 1+r.IntN(8), 1+r.IntN(22), res, codec, group, ext)
	} else {
		e.Name = fmt.Sprintf("%s.%d.%s.%s-%s.%s", title, year, res, codec, group, ext)
	}
	e.Size = 300_000_000 + uint64(r.Int64N(4_000_000_000))
}

func (g *gen) image(e *proto.FileEntry) {
	r := g.r
	e.Media = proto.MediaImage
	switch r.IntN(5) {
	case 0, 1:
		e.Name = fmt.Sprintf("%s %d - IMG_%04d.jpg", g.titled(1+r.IntN(3)), 2000+r.IntN(26), r.IntN(10000))
	case 2:
		e.Name = fmt.Sprintf("DSC%05d.JPG", r.IntN(100000))
	default:
		e.Name = fmt.Sprintf("%s %s %d.%s", titleCase(g.words(1)[0]), strings.Join(g.words(1+r.IntN(2)), " "),
			1+r.IntN(300), pick(r, []string{"jpg", "png", "gif"}, []int{6, 3, 1}))
	}
	e.Size = 50_000 + uint64(r.IntN(8_000_000))
}

func (g *gen) document(e *proto.FileEntry) {
	r := g.r
	e.Media = proto.MediaDocument
	switch r.IntN(4) {
	case 0:
		e.Name = fmt.Sprintf("%s - %s (%d).%s", g.pickArtist(), g.titled(2+r.IntN(4)), 1900+r.IntN(126),
			pick(r, []string{"pdf", "epub", "mobi"}, []int{5, 3, 1}))
	case 1:
		e.Name = fmt.Sprintf("%s_%s_v%d.%s", strings.Join(g.words(2), "_"), g.words(1)[0], 1+r.IntN(9),
			pick(r, []string{"docx", "doc", "odt"}, []int{5, 3, 1}))
	case 2:
		e.Name = fmt.Sprintf("%s %s Lecture Notes %d.txt", g.titled(2), g.titled(1+r.IntN(2)), 1+r.IntN(30))
	default:
		e.Name = fmt.Sprintf("%s - %s.pdf", g.titled(3+r.IntN(5)), g.titled(1+r.IntN(3)))
	}
	e.Size = 20_000 + uint64(r.IntN(20_000_000))
}

func (g *gen) archive(e *proto.FileEntry) {
	r := g.r
	e.Media = proto.MediaArchive
	e.Name = fmt.Sprintf("%s %s Complete Collection %d-%d.%s", g.pickArtist(), g.titled(1+r.IntN(2)), 1960+r.IntN(40), 2000+r.IntN(26),
		pick(r, []string{"zip", "rar", "7z"}, []int{5, 4, 1}))
	e.Size = 10_000_000 + uint64(r.Int64N(2_000_000_000))
}

func (g *gen) software(e *proto.FileEntry) {
	r := g.r
	e.Media = proto.MediaSoftware
	w := g.titled(1 + r.IntN(2))
	if r.IntN(2) == 0 {
		e.Name = fmt.Sprintf("%sSetup-%d.%d.%d.exe", strings.ReplaceAll(w, " ", ""), 1+r.IntN(12), r.IntN(10), r.IntN(100))
		g.used = g.used[:0] // the words are glued together: not searchable alone
	} else {
		e.Name = fmt.Sprintf("%s-%d.%d-x86_64.iso", strings.ToLower(strings.ReplaceAll(w, " ", "-")), 1+r.IntN(30), r.IntN(10))
	}
	e.Size = 1_000_000 + uint64(r.Int64N(4_000_000_000))
}

// Generate returns n synthetic files; the same seed gives the same files.
func Generate(seed int64, n int) []proto.FileEntry {
	g := newGen(seed)
	files := make([]proto.FileEntry, n)
	for i := range files {
		if i >= MinCopyDistance && g.r.IntN(10) == 0 {
			// A whole number of MinCopyDistance back, so that identical
			// files (copies of copies too) are never closer than that.
			files[i] = files[i-MinCopyDistance*(1+g.r.IntN(i/MinCopyDistance))]
			continue
		}
		files[i] = g.file()
	}
	return files
}

// Queries returns n two-word queries over the same vocabulary as Generate.
// Three in four take two distinct words from one synthetic file, as a person
// looking for a song would, so they mostly have hits in a large corpus; the
// rest pair two independent Zipf-drawn words, which often have none and make
// the index intersect long lists for nothing. Words keep the case and
// accents they have in file names.
func Queries(seed int64, n int) []string {
	g := newGen(seed)
	qs := make([]string, 0, n)
	for len(qs) < n {
		var a, b string
		if g.r.IntN(4) == 0 {
			a, b = g.vocab[g.word.Uint64()], g.vocab[g.word.Uint64()]
		} else {
			g.file()
			if len(g.used) < 2 {
				continue
			}
			a = g.used[g.r.IntN(len(g.used))]
			b = g.used[g.r.IntN(len(g.used))]
		}
		if a == b {
			continue
		}
		qs = append(qs, a+" "+b)
	}
	return qs
}
