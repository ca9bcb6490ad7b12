package lab

import (
	"bytes"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-p2p/strata/internal/media"
)

// TestFillShare: every generated file is what its extension says (MP3s
// with frames and tags, decodable pictures, PDFs with a trailer), the same
// seed gives the same bytes, and neighbouring nodes hold some same files.
func TestFillShare(t *testing.T) {
	a, b, again := t.TempDir(), t.TempDir(), t.TempDir()
	if _, err := fillShare(a, 0, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := fillShare(b, 1, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := fillShare(again, 0, 7); err != nil {
		t.Fatal(err)
	}
	filesA := readTree(t, a)
	kinds := map[string]int{}
	beatles := 0
	for rel, data := range filesA {
		ext := filepath.Ext(rel)
		kinds[ext]++
		switch ext {
		case ".mp3":
			info, err := media.ParseMP3(bytes.NewReader(data), int64(len(data)))
			if err != nil || info.Bitrate == 0 || info.Artist == "" || info.Title == "" {
				t.Errorf("%s: not a tagged MP3: %+v %v", rel, info, err)
			}
			if info.Artist == "The Beatles" {
				beatles++
			}
		case ".png", ".jpg":
			if _, _, err := image.Decode(bytes.NewReader(data)); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
		case ".pdf":
			if !bytes.HasPrefix(data, []byte("%PDF-1.4")) || !bytes.HasSuffix(data, []byte("%%EOF\n")) {
				t.Errorf("%s: not a PDF", rel)
			}
		case ".txt":
		default:
			t.Errorf("unexpected file %s", rel)
		}
	}
	if kinds[".mp3"] < 6 || kinds[".png"]+kinds[".jpg"] == 0 || kinds[".pdf"]+kinds[".txt"] == 0 {
		t.Errorf("file kinds %v: want MP3s, pictures and documents", kinds)
	}
	if beatles == 0 {
		t.Error("no Beatles track: the lab's example search would find nothing on this node")
	}
	for rel, data := range readTree(t, again) {
		if !bytes.Equal(filesA[rel], data) {
			t.Errorf("%s differs between two runs with one seed", rel)
		}
	}
	shared := 0
	for rel, data := range readTree(t, b) {
		if strings.HasSuffix(rel, ".mp3") && bytes.Equal(filesA[rel], data) {
			shared++
		}
	}
	if shared == 0 {
		t.Error("node 1 holds none of node 0's tracks; some files should have several holders")
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
