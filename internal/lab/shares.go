package lab

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/strata-p2p/strata/internal/mediagen"
)

// The catalogue the generated share folders draw from: albums by artists
// whose names people search for. Each track is one file with fixed bytes
// (its noise seed is its place in the catalogue), so a track given to two
// nodes has one content ID and two holders.
type album struct {
	artist, title string
	year          int
	tracks        []string
}

var catalogue = []album{
	{"The Beatles", "Abbey Road", 1969, []string{"Come Together", "Something", "Here Comes the Sun", "Octopus's Garden", "Because"}},
	{"The Beatles", "Revolver", 1966, []string{"Taxman", "Eleanor Rigby", "Yellow Submarine", "Here, There and Everywhere"}},
	{"Miles Davis", "Kind of Blue", 1959, []string{"So What", "Freddie Freeloader", "Blue in Green", "All Blues"}},
	{"Nina Simone", "I Put a Spell on You", 1965, []string{"Feeling Good", "Ne me quitte pas", "Marriage Is for Old Folks"}},
	{"Daft Punk", "Discovery", 2001, []string{"One More Time", "Aerodynamic", "Digital Love", "Harder, Better, Faster, Stronger"}},
	{"Radiohead", "OK Computer", 1997, []string{"Airbag", "Paranoid Android", "Karma Police", "No Surprises"}},
	{"Björk", "Homogenic", 1997, []string{"Hunter", "Jóga", "Bachelorette", "All Is Full of Love"}},
	{"Johann Sebastian Bach", "Goldberg Variations (Glenn Gould, 1981)", 1981, []string{"Aria", "Variatio 1", "Variatio 2", "Variatio 3. Canone all'Unisono"}},
	{"Fela Kuti", "Zombie", 1977, []string{"Zombie", "Mr. Follow Follow"}},
	{"Kraftwerk", "Trans-Europa Express", 1977, []string{"Europa Endlos", "Spiegelsaal", "Trans-Europa Express"}},
	{"Aretha Franklin", "I Never Loved a Man the Way I Love You", 1967, []string{"Respect", "Do Right Woman, Do Right Man", "Dr. Feelgood"}},
	{"Massive Attack", "Mezzanine", 1998, []string{"Angel", "Risingson", "Teardrop", "Inertia Creeps"}},
}

var documents = []string{
	"Meeting notes 2024-03-12", "Tax return 2023", "Recipe - sourdough bread", "Lecture 4 - distributed hash tables",
	"KaZaA FastTrack protocol notes", "Gnutella 0.6 ultrapeer spec (draft)", "Band rehearsal schedule", "Invoice 1043",
	"Reading list", "Thesis chapter 2 - overlay networks", "Flat contract", "Bike repair manual",
}

var pictures = []string{
	"Holiday 2019 - beach", "Cat on the sofa", "Album cover - Abbey Road", "Concert poster", "Sunset over the harbour",
	"Screenshot 2024-05-01", "Family dinner", "Mountain trail",
}

// track is one catalogue entry, numbered from 0 across the whole catalogue.
type track struct {
	album *album
	no    int // 1-based within the album
	id    int // place in the catalogue
}

func allTracks() []track {
	var ts []track
	for i := range catalogue {
		for j := range catalogue[i].tracks {
			ts = append(ts, track{album: &catalogue[i], no: j + 1, id: len(ts)})
		}
	}
	return ts
}

// shareBudget is a generous bound on one node's generated share folder,
// checked against the free disk space before anything is written.
const shareBudget = 12 << 20

// fillShare writes node i's share folder under dir: a few albums' worth of
// MP3s (every third track also goes to the next node, so some files have
// several holders), documents and pictures. Everything is drawn from seed,
// so the same seed gives the same files.
func fillShare(dir string, i int, seed uint64) (files int, err error) {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	ts := allTracks()
	pick := map[int]bool{}
	for _, t := range ownTracks(rng, len(ts)) {
		pick[t] = true
	}
	// The previous node's tracks whose catalogue number is a multiple of
	// three are on this node too: those files have two holders or more.
	if i > 0 {
		for _, t := range ownTracks(rand.New(rand.NewPCG(seed, uint64(i-1))), len(ts)) {
			if t%3 == 0 {
				pick[t] = true
			}
		}
	}
	for t := range pick {
		if err := writeTrack(dir, ts[t], seed); err != nil {
			return files, err
		}
		files++
	}
	for range 1 + rng.IntN(3) {
		name := documents[rng.IntN(len(documents))]
		if err := writeDocument(dir, name, rng); err != nil {
			return files, err
		}
		files++
	}
	for range 1 + rng.IntN(3) {
		name := pictures[rng.IntN(len(pictures))]
		if err := writePicture(dir, name, rng); err != nil {
			return files, err
		}
		files++
	}
	return files, nil
}

// ownTracks draws a node's own tracks: six to ten of the catalogue's n,
// one of them from the first two albums (everyone has a Beatles record:
// the classic most-shared files of any network).
func ownTracks(rng *rand.Rand, n int) []int {
	picked := map[int]bool{rng.IntN(len(catalogue[0].tracks) + len(catalogue[1].tracks)): true}
	for want := 6 + rng.IntN(5); len(picked) < want; {
		picked[rng.IntN(n)] = true
	}
	ts := make([]int, 0, len(picked))
	for t := range picked {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

var bitrates = []int{128, 160, 192, 256, 320}

func writeTrack(dir string, t track, seed uint64) error {
	a := t.album
	sub := filepath.Join(dir, "Music", safeName(a.artist), fmt.Sprintf("%d - %s", a.year, safeName(a.title)))
	name := fmt.Sprintf("%02d - %s - %s.mp3", t.no, safeName(a.artist), safeName(a.tracks[t.no-1]))
	rng := rand.New(rand.NewPCG(seed, 1<<32+uint64(t.id)))
	var buf bytes.Buffer
	err := mediagen.WriteMP3(&buf, mediagen.MP3Options{
		Duration: time.Duration(8+rng.IntN(20)) * time.Second, Bitrate: bitrates[rng.IntN(len(bitrates))],
		SampleRate: 44100, Noise: true, Seed: seed ^ uint64(t.id), InfoHeader: true, ID3v1: true,
		Artist: a.artist, Title: a.tracks[t.no-1], Album: a.title,
	})
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(sub, name), buf.Bytes())
}

// writeDocument writes a plain-text note or a small valid PDF.
func writeDocument(dir, title string, rng *rand.Rand) error {
	body := fmt.Sprintf("%s\n\n%s\n", title, strings.Repeat(lorem[rng.IntN(len(lorem))]+" ", 20+rng.IntN(200)))
	path := filepath.Join(dir, "Documents", title+".txt")
	if rng.IntN(2) == 0 {
		return writeFile(path, []byte(body))
	}
	return writeFile(strings.TrimSuffix(path, ".txt")+".pdf", minimalPDF(title, body))
}

var lorem = []string{
	"Peers that can take the load become supernodes and index their leaves.",
	"Queries flood among supernodes with a time to live and return along the reverse path.",
	"Remember to water the plants and to pay the electricity bill before Friday.",
	"The bread needs twelve hours to rise at room temperature.",
}

// minimalPDF is a one-page PDF 1.4 with the title as its text and a correct
// cross-reference table.
func minimalPDF(title, body string) []byte {
	esc := strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`)
	content := fmt.Sprintf("BT /F1 14 Tf 72 720 Td (%s) Tj ET\n%% %s", esc.Replace(title), strings.ReplaceAll(body, "\n", " "))
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(content)+1, content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R /Info << /Title (%s) >> >>\nstartxref\n%d\n%%%%EOF\n",
		len(objs)+1, esc.Replace(title), xref)
	return b.Bytes()
}

// writePicture writes a small PNG or JPEG: a gradient with a few blocks.
func writePicture(dir, title string, rng *rand.Rand) error {
	w, h := 160+rng.IntN(160), 120+rng.IntN(120)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	base := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{base.R + uint8(x), base.G + uint8(y), base.B + uint8(x^y), 255})
		}
	}
	var buf bytes.Buffer
	path := filepath.Join(dir, "Pictures", title)
	var err error
	if rng.IntN(2) == 0 {
		err, path = png.Encode(&buf, img), path+".png"
	} else {
		err, path = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}), path+".jpg"
	}
	if err != nil {
		return err
	}
	return writeFile(path, buf.Bytes())
}

// safeName keeps a catalogue name usable as a file name.
func safeName(s string) string {
	return strings.NewReplacer("/", "-", "\\", "-", ":", " -").Replace(s)
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return diskError(err)
	}
	return diskError(os.WriteFile(path, b, 0o644))
}

// ErrNoSpace is returned (wrapped) when the lab's folder runs out of room.
var ErrNoSpace = errors.New("no room left on the disk")

// diskError turns ENOSPC and EDQUOT into ErrNoSpace with a hint.
func diskError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w (%v); free some space or put the lab elsewhere with --dir", ErrNoSpace, err)
	}
	return err
}

// FillShare writes the share folder of the lab's node number index (from
// 0) into dir, as `strata lab` does, unless dir already holds files: a
// restarted container keeps its share. It returns the files written.
func FillShare(dir string, index int, seed uint64) (int, error) {
	if index < 0 {
		return 0, fmt.Errorf("lab: node index %d: use 0 or more", index)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return 0, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, diskError(err)
	}
	return fillShare(dir, index, seed)
}
