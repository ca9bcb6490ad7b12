package corpus

import (
	"reflect"
	"strings"
	"testing"

	"github.com/strata-p2p/strata/proto"
)

func TestGenerateDeterministic(t *testing.T) {
	a, b := Generate(7, 2000), Generate(7, 2000)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Generate(7, 2000) differs between calls")
	}
	if c := Generate(8, 2000); reflect.DeepEqual(a, c) {
		t.Fatal("Generate gives the same files for seeds 7 and 8")
	}
	if qa, qb := Queries(3, 500), Queries(3, 500); !reflect.DeepEqual(qa, qb) {
		t.Fatal("Queries(3, 500) differs between calls")
	}
}

func TestGenerateValid(t *testing.T) {
	files := Generate(1, 20000)
	var nameBytes, tagged int
	media := map[proto.MediaType]int{}
	for i := range files {
		e := &files[i]
		if err := proto.ValidateEntry(e); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		nameBytes += len(e.Name)
		media[e.Media]++
		if e.Artist != "" {
			tagged++
		}
		if e.Media == proto.MediaAudio && (e.Bitrate == 0 || e.SampleRate == 0 || e.Duration == 0) {
			t.Fatalf("audio file %q lacks bitrate, sample rate or duration", e.Name)
		}
	}
	avg := float64(nameBytes) / float64(len(files))
	t.Logf("average name %.1f bytes, %d tagged, media %v", avg, tagged, media)
	for i := 0; i < 10; i++ {
		t.Logf("%q %q %q %q", files[i].Name, files[i].Artist, files[i].Title, files[i].Album)
	}
	if avg < 45 || avg > 60 {
		t.Errorf("average name length %.1f bytes, want about 53", avg)
	}
	if media[proto.MediaAudio] < len(files)/2 {
		t.Errorf("%d audio files of %d, want about 55%%", media[proto.MediaAudio], len(files))
	}
}

func TestCopiesAreFarApart(t *testing.T) {
	files := Generate(2, 6*MinCopyDistance)
	last := map[proto.ContentID]int{}
	copies := 0
	for i, e := range files {
		if j, ok := last[e.ContentID]; ok {
			copies++
			if i-j < MinCopyDistance {
				t.Fatalf("files %d and %d are the same, closer than %d", j, i, MinCopyDistance)
			}
		}
		last[e.ContentID] = i
	}
	if copies < len(files)/20 {
		t.Fatalf("%d copies in %d files, want about one in ten after the first %d", copies, len(files), MinCopyDistance)
	}
}

func TestQueriesTwoWords(t *testing.T) {
	for _, q := range Queries(5, 1000) {
		if f := strings.Fields(q); len(f) != 2 || f[0] == f[1] {
			t.Fatalf("query %q: want two distinct words", q)
		}
	}
	t.Log(Queries(5, 10))
}
