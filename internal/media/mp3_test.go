package media_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/strata-p2p/strata/internal/media"
	"github.com/strata-p2p/strata/internal/mediagen"
	"github.com/strata-p2p/strata/proto"
)

func genMP3(t testing.TB, o mediagen.MP3Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := mediagen.WriteMP3(&buf, o); err != nil {
		t.Fatalf("WriteMP3: %v", err)
	}
	return buf.Bytes()
}

func parse(t testing.TB, b []byte) (media.MP3Info, error) {
	t.Helper()
	return media.ParseMP3(bytes.NewReader(b), int64(len(b)))
}

// ParseMP3 reads back exactly what WriteMP3 wrote.
func TestParseMP3RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    mediagen.MP3Options
	}{
		{"cbr128 info v2.3 v1", mediagen.MP3Options{Duration: 3*time.Minute + 12*time.Second, Bitrate: 128, SampleRate: 44100,
			InfoHeader: true, ID3v1: true, Artist: "The Band", Title: "A Song", Album: "First Album"}},
		{"cbr320 mono no info non-ascii", mediagen.MP3Options{Duration: 10 * time.Second, Bitrate: 320, SampleRate: 48000, Mono: true,
			Artist: "Sigur Rós", Title: "Ágætis byrjun ☃ 日本語 🎵", Album: "Ágætis byrjun", ID3Padding: 1000}},
		{"cbr32 32k noise v2.4 utf8", mediagen.MP3Options{Duration: 5 * time.Second, Bitrate: 32, SampleRate: 32000, Noise: true, Seed: 7,
			ID3Version: 4, Artist: "Мумий Тролль", Title: "Владивосток 2000", Album: "Морская"}},
		{"v2.2 ucs2 info", mediagen.MP3Options{Duration: 61 * time.Second, Bitrate: 192, ID3Version: 2, InfoHeader: true,
			Artist: "Björk", Title: "Jóga ♪", Album: "Homogenic"}},
		{"no tags", mediagen.MP3Options{Duration: 2 * time.Second}},
		{"latin1 with ff", mediagen.MP3Options{Duration: 2 * time.Second, Artist: "Ÿÿÿ", Title: "ÿ\u00ff", Album: "Aÿ"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := genMP3(t, tc.o)
			info, err := parse(t, b)
			if err != nil {
				t.Fatalf("ParseMP3: %v", err)
			}
			wantBR, wantSR := tc.o.Bitrate, tc.o.SampleRate
			if wantBR == 0 {
				wantBR = 128
			}
			if wantSR == 0 {
				wantSR = 44100
			}
			if info.Bitrate != wantBR || info.SampleRate != wantSR || info.MPEGVersion != "1" {
				t.Errorf("got MPEG-%s %d kbit/s %d Hz, want MPEG-1 %d kbit/s %d Hz", info.MPEGVersion, info.Bitrate, info.SampleRate, wantBR, wantSR)
			}
			if d := info.Duration - tc.o.AudioDuration(); d > time.Second || d < -time.Second {
				t.Errorf("duration %v, wrote %v", info.Duration, tc.o.AudioDuration())
			}
			if d := info.Duration - tc.o.Duration; d > time.Second || d < -time.Second {
				t.Errorf("duration %v, asked for %v", info.Duration, tc.o.Duration)
			}
			if tc.o.InfoHeader && (info.Frames != tc.o.Frames() || info.VBR) {
				t.Errorf("Info header: frames %d VBR %v, want %d false", info.Frames, info.VBR, tc.o.Frames())
			}
			wantCh := 2
			if tc.o.Mono {
				wantCh = 1
			}
			if info.Channels != wantCh {
				t.Errorf("channels %d, want %d", info.Channels, wantCh)
			}
			if info.Artist != tc.o.Artist || info.Title != tc.o.Title || info.Album != tc.o.Album {
				t.Errorf("tags %q/%q/%q, want %q/%q/%q", info.Artist, info.Title, info.Album, tc.o.Artist, tc.o.Title, tc.o.Album)
			}
		})
	}
}

// The ID3v1 tag is used when there is no ID3v2 tag.
func TestParseMP3ID3v1Fallback(t *testing.T) {
	b := genMP3(t, mediagen.MP3Options{Duration: 3 * time.Second, ID3v1: true,
		Artist: "An Artist With A Rather Long Name", Title: "Título", Album: "日本"})
	tagLen := 10 + (int(b[6])<<21 | int(b[7])<<14 | int(b[8])<<7 | int(b[9]))
	info, err := parse(t, b[tagLen:])
	if err != nil {
		t.Fatal(err)
	}
	if info.Artist != "An Artist With A Rather Long N" || info.Title != "Título" || info.Album != "??" {
		t.Errorf("ID3v1 tags %q/%q/%q", info.Artist, info.Title, info.Album)
	}
	if d := info.Duration - 3*time.Second; d > time.Second || d < -time.Second {
		t.Errorf("duration %v with the ID3v1 tag not counted as audio", info.Duration)
	}
}

// Hand-built tags: the variants mediagen does not write.

func tag(major, flags byte, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	return append([]byte{'I', 'D', '3', major, 0, flags, byte(len(b) >> 21 & 0x7F), byte(len(b) >> 14 & 0x7F), byte(len(b) >> 7 & 0x7F), byte(len(b) & 0x7F)}, b...)
}

// unsyncTag builds a tag with the unsynchronisation flag, inserting a zero
// after every 0xFF of the body.
func unsyncTag(major byte, body ...[]byte) []byte {
	var b []byte
	for _, c := range bytes.Join(body, nil) {
		b = append(b, c)
		if c == 0xFF {
			b = append(b, 0)
		}
	}
	return tag(major, 0x80, b)
}

func frame23(id string, flags uint16, data []byte) []byte {
	b := append([]byte(id), 0, 0, 0, 0, byte(flags>>8), byte(flags))
	binary.BigEndian.PutUint32(b[4:], uint32(len(data)))
	return append(b, data...)
}

func frame24(id string, flags uint16, data []byte) []byte {
	n := len(data)
	b := append([]byte(id), byte(n>>21&0x7F), byte(n>>14&0x7F), byte(n>>7&0x7F), byte(n&0x7F), byte(flags>>8), byte(flags))
	return append(b, data...)
}

func utf16Text(s string, bigEndian, bom bool) []byte {
	var b []byte
	var order binary.AppendByteOrder = binary.LittleEndian
	if bigEndian {
		order = binary.BigEndian
	}
	if bom {
		b = order.AppendUint16(b, 0xFEFF)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		b = order.AppendUint16(b, u)
	}
	return append(b, 0, 0)
}

// audio returns n frames of plain 128 kbit/s 44.1 kHz MPEG-1 Layer III.
func audio(t testing.TB, d time.Duration) []byte {
	return genMP3(t, mediagen.MP3Options{Duration: d})
}

func TestParseMP3TagVariants(t *testing.T) {
	big := make([]byte, 2<<20) // an APIC frame bigger than any in-memory cap
	for _, tc := range []struct {
		name                 string
		tag                  []byte
		artist, title, album string
	}{
		{
			"v2.3 utf16 BE bom, grouping, extended header",
			tag(3, 0x40,
				[]byte{0, 0, 0, 6, 0, 0, 0, 0, 0, 0}, // extended header: size 6 (excluding itself)
				frame23("APIC", 0, big),
				frame23("TPE1", 0x0020, append([]byte{0x42, 1}, utf16Text("Ærø", true, true)...)),
				frame23("TIT2", 0, append([]byte{1}, utf16Text("Ünïcödé", false, true)...)),
				frame23("TALB", 0x0080, []byte{0, 'x'}), // compressed: skipped
			),
			"Ærø", "Ünïcödé", "",
		},
		{
			"v2.3 whole-tag unsync",
			unsyncTag(3,
				frame23("TIT2", 0, []byte{0, 'a', 0xFF, 'b'}), // "aÿb": 0xFF gets a zero after it
				frame23("TPE1", 0, []byte{0, 'x', 0xFF}),
			),
			"xÿ", "aÿb", "",
		},
		{
			"v2.4 utf16be no bom, per-frame unsync with length indicator, multiple values, extended header",
			tag(4, 0x40,
				[]byte{0, 0, 0, 6, 1, 0}, // extended header: syncsafe size 6 including itself
				frame24("TIT2", 0x0003, []byte{0, 0, 0, 4, 0, 'a', 0xFF, 0x00, 'c'}),
				frame24("TPE1", 0, append([]byte{2}, utf16Text("Ωmega", true, false)...)),
				frame24("TALB", 0, []byte{3, 'o', 'n', 'e', 0, 't', 'w', 'o'}),
			),
			"Ωmega", "aÿc", "one",
		},
		{
			"v2.2",
			tag(2, 0,
				[]byte("TT2\x00\x00\x04\x00abc"),
				[]byte("TP1\x00\x00\x09\x01\xff\xfeZ\x00\xe9\x00\x00\x00"),
				[]byte("TAL\x00\x00\x03\x03ok"), // UTF-8 is not v2.2, but is decoded
			),
			"Zé", "abc", "ok",
		},
		{
			"padding then garbage stops the frame walk",
			tag(3, 0,
				frame23("TIT2", 0, []byte{0, 'T'}),
				make([]byte, 20),
				frame23("TPE1", 0, []byte{0, 'X'}),
			),
			"", "T", "",
		},
		{
			"frame size past the tag",
			tag(3, 0, frame23("TIT2", 0, []byte{0, 'T'})[:10], []byte{0, 'T'}, []byte("TPE1\x7f\x00\x00\x00\x00\x00")),
			"", "T", "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append(tc.tag, audio(t, 2*time.Second)...)
			info, err := parse(t, b)
			if err != nil {
				t.Fatalf("ParseMP3: %v", err)
			}
			if info.Artist != tc.artist || info.Title != tc.title || info.Album != tc.album {
				t.Errorf("tags %q/%q/%q, want %q/%q/%q", info.Artist, info.Title, info.Album, tc.artist, tc.title, tc.album)
			}
			if info.SampleRate != 44100 || info.Bitrate != 128 {
				t.Errorf("audio after the tag: %d Hz %d kbit/s", info.SampleRate, info.Bitrate)
			}
		})
	}
}

// mpegFrames builds n frames with header h (4 bytes) and length n bytes
// each; body optionally holds a Xing/VBRI header at off.
func mpegFrames(h [4]byte, length, n int, first []byte, at int) []byte {
	var b []byte
	for i := range n {
		f := make([]byte, length)
		copy(f, h[:])
		if i == 0 && first != nil {
			copy(f[at:], first)
		}
		b = append(b, f...)
	}
	return b
}

func avgKbps(nbytes, frames, samples, rate float64) int {
	return int(nbytes*8/(frames*samples/rate)/1000 + 0.5)
}

func TestParseMP3Audio(t *testing.T) {
	// MPEG-2 Layer III, 22050 Hz, 64 kbit/s, joint stereo: 208-byte frames, 576 samples.
	mpeg2 := [4]byte{0xFF, 0xF3, 0x80, 0x40}
	// MPEG-2.5 Layer III, 11025 Hz, 32 kbit/s, mono: 208-byte frames.
	mpeg25 := [4]byte{0xFF, 0xE3, 0x40, 0xC0}
	// MPEG-1 Layer III, 44100 Hz, 128 kbit/s, stereo, CRC: 417-byte frames.
	mpeg1crc := [4]byte{0xFF, 0xFA, 0x90, 0x00}

	xing := func(tag string, frames, nbytes uint32) []byte {
		b := append([]byte(tag), 0, 0, 0, 3)
		b = binary.BigEndian.AppendUint32(b, frames)
		return binary.BigEndian.AppendUint32(b, nbytes)
	}
	vbri := func(frames, nbytes uint32) []byte {
		b := append([]byte("VBRI"), 0, 1, 0, 0, 0, 50)
		b = binary.BigEndian.AppendUint32(b, nbytes)
		return binary.BigEndian.AppendUint32(b, frames)
	}

	for _, tc := range []struct {
		name     string
		file     []byte
		version  string
		br, sr   int
		ch       int
		dur      time.Duration
		vbr      bool
		frames   int
		tolerate time.Duration
	}{
		{"mpeg2 cbr estimate", mpegFrames(mpeg2, 208, 1000, nil, 0), "2", 64, 22050, 2, 1000 * 576 * time.Second / 22050, false, 0, time.Second},
		{"mpeg2.5 mono", mpegFrames(mpeg25, 208, 100, nil, 0), "2.5", 32, 11025, 1, 100 * 576 * time.Second / 11025, false, 0, time.Second},
		{"mpeg2 xing vbr", mpegFrames(mpeg2, 208, 500, xing("Xing", 4000, 1_000_000), 4+17),
			// The header claims 4000 frames in 1 MB; the 500*208-byte file cannot hold 1 MB, so the byte count is the file's.
			"2", avgKbps(500*208, 4000, 576, 22050), 22050, 2, 4000 * 576 * time.Second / 22050, true, 4000, time.Millisecond},
		{"mpeg1 crc xing after crc", mpegFrames(mpeg1crc, 417, 100, xing("Xing", 90, 417*100), 6+32),
			"1", avgKbps(417*100, 90, 1152, 44100), 44100, 2, 90 * 1152 * time.Second / 44100, true, 90, time.Millisecond},
		{"mpeg1 vbri", mpegFrames([4]byte{0xFF, 0xFB, 0x90, 0x40}, 417, 50, vbri(200, 20000), 36),
			"1", avgKbps(20000, 200, 1152, 44100), 44100, 2, 200 * 1152 * time.Second / 44100, true, 200, time.Millisecond},
		{"lying xing frame count ignored", mpegFrames(mpeg2, 208, 10, xing("Info", 1<<31, 0), 4+17),
			"2", 64, 22050, 2, 10 * 576 * time.Second / 22050, false, 0, 100 * time.Millisecond},
		{"junk and a false sync before the first frame",
			append([]byte{0xFF, 0xFB, 0x90, 0x40, 1, 2, 3, 0xFF, 0xFF, 0xE0}, mpegFrames(mpeg2, 208, 100, nil, 0)...),
			"2", 64, 22050, 2, 100 * 576 * time.Second / 22050, false, 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := parse(t, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if info.MPEGVersion != tc.version || info.Bitrate != tc.br || info.SampleRate != tc.sr || info.Channels != tc.ch ||
				info.VBR != tc.vbr || info.Frames != tc.frames {
				t.Errorf("got %+v\nwant MPEG-%s %d kbit/s %d Hz %d ch vbr=%v frames=%d", info, tc.version, tc.br, tc.sr, tc.ch, tc.vbr, tc.frames)
			}
			if d := info.Duration - tc.dur; d > tc.tolerate || d < -tc.tolerate {
				t.Errorf("duration %v, want %v ± %v", info.Duration, tc.dur, tc.tolerate)
			}
		})
	}
}

func TestParseMP3NoAudio(t *testing.T) {
	for _, tc := range []struct {
		name  string
		file  []byte
		title string
	}{
		{"empty", nil, ""},
		{"text", []byte("this is not an mp3 at all"), ""},
		{"tag only", tag(3, 0, frame23("TIT2", 0, []byte{0, 'T'})), "T"},
		{"tag then zeros", append(tag(3, 0, frame23("TIT2", 0, []byte{0, 'T'})), make([]byte, 300<<10)...), "T"},
		{"layer II frames", mpegFrames([4]byte{0xFF, 0xFD, 0x90, 0x40}, 417, 10, nil, 0), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := parse(t, tc.file)
			if !errors.Is(err, media.ErrNoAudioFrame) {
				t.Fatalf("err = %v, want ErrNoAudioFrame", err)
			}
			if info.Title != tc.title {
				t.Errorf("title %q, want %q (tags survive a missing frame)", info.Title, tc.title)
			}
		})
	}
}

// hugeFile is an io.ReaderAt of a sparse file: head, then zeros to size.
type hugeFile struct{ head []byte }

func (h hugeFile) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	if off < int64(len(h.head)) {
		copy(p, h.head[off:])
	}
	return len(p), nil
}

// Length fields are checked against the file size and fixed caps before
// anything is allocated: a 1 TiB file claiming a 256 MiB unsynchronised tag
// costs a few MiB at most.
func TestParseMP3BoundedAllocation(t *testing.T) {
	for _, tc := range []struct {
		name string
		head []byte
		size int64
	}{
		{"huge unsync tag", []byte{'I', 'D', '3', 3, 0, 0x80, 0x7F, 0x7F, 0x7F, 0x7F}, 1 << 40},
		{"huge frame in tag", tag(3, 0, []byte("TIT2\x7f\xff\xff\xff\x00\x00")), 1 << 40},
		{"v2.4 huge frame", tag(4, 0, []byte("TIT2\x7f\x7f\x7f\x7f\x00\x00"), make([]byte, 100)), 1 << 40},
		{"tag larger than the file", []byte{'I', 'D', '3', 3, 0, 0x80, 0x7F, 0x7F, 0x7F, 0x7F, 0, 0}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _ = media.ParseMP3(hugeFile{tc.head}, tc.size)
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
				t.Errorf("allocated %d bytes", got)
			}
		})
	}
}

func TestParseMP3ReadError(t *testing.T) {
	b := audio(t, time.Second)
	_, err := media.ParseMP3(io.NewSectionReader(bytes.NewReader(b), 0, 100), int64(len(b)))
	if err == nil || errors.Is(err, media.ErrNoAudioFrame) {
		t.Fatalf("err = %v, want a read error", err)
	}
}

func TestTypeOf(t *testing.T) {
	for name, want := range map[string]proto.MediaType{
		"a.mp3": proto.MediaAudio, "B.FLAC": proto.MediaAudio, "x.m4a": proto.MediaAudio,
		"film.MKV": proto.MediaVideo, "c.webm": proto.MediaVideo,
		"p.JPG": proto.MediaImage, "q.webp": proto.MediaImage,
		"book.epub": proto.MediaDocument, "notes.md": proto.MediaDocument, "r.docx": proto.MediaDocument,
		"s.tar.gz": proto.MediaArchive, "t.7z": proto.MediaArchive,
		"setup.exe": proto.MediaSoftware, "debian.iso": proto.MediaSoftware, "app.apk": proto.MediaSoftware,
		"README": proto.MediaOther, "mp3": proto.MediaOther, "x.mp3.part": proto.MediaOther,
	} {
		if got := media.TypeOf(name); got != want {
			t.Errorf("TypeOf(%q) = %v, want %v", name, got, want)
		}
	}
	if !media.IsMP3("A.Mp3") || media.IsMP3("a.mp4") {
		t.Error("IsMP3")
	}
}

func FuzzParseMP3(f *testing.F) {
	for _, o := range []mediagen.MP3Options{
		{Duration: 100 * time.Millisecond, InfoHeader: true, ID3v1: true, Artist: "Ärtist", Title: "Tïtle ☃", Album: "Al"},
		{Duration: 80 * time.Millisecond, Bitrate: 32, SampleRate: 32000, Mono: true, ID3Version: 4, Title: "日本"},
		{Duration: 80 * time.Millisecond, Bitrate: 320, SampleRate: 48000, ID3Version: 2, Artist: "Zé", Noise: true, Seed: 1},
		{Duration: 50 * time.Millisecond, ID3Padding: 64},
	} {
		f.Add(genMP3(f, o))
	}
	f.Add(append(unsyncTag(3, frame23("TIT2", 0, []byte{0, 'a', 0xFF, 'b'})),
		mpegFrames([4]byte{0xFF, 0xF3, 0x80, 0x40}, 208, 3, []byte("Xing\x00\x00\x00\x03\x00\x00\x00\x03\x00\x00\x02\x70"), 21)...))
	f.Add(append(tag(4, 0x40, []byte{0, 0, 0, 6, 1, 0}, frame24("TIT2", 0x0003, []byte{0, 0, 0, 4, 0, 'a', 0xFF, 0x00, 'c'})),
		mpegFrames([4]byte{0xFF, 0xFB, 0x90, 0x40}, 417, 2, []byte("VBRI\x00\x01\x00\x00\x00\x32\x00\x00\x03\x42\x00\x00\x00\x02"), 36)...))
	f.Add([]byte("TAG"))

	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := media.ParseMP3(bytes.NewReader(b), int64(len(b)))
		for _, s := range []string{info.Artist, info.Title, info.Album} {
			if !utf8.ValidString(s) {
				t.Fatalf("tag %q is not valid UTF-8", s)
			}
		}
		if err != nil {
			return
		}
		if info.SampleRate < 8000 || info.SampleRate > 48000 || info.Bitrate <= 0 || info.Duration < 0 ||
			(info.Channels != 1 && info.Channels != 2) {
			t.Fatalf("implausible result without an error: %+v", info)
		}
	})
}
