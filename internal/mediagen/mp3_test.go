package mediagen

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// walkFrames checks that b (after any ID3v2 tag, before any ID3v1 tag) is a
// gapless sequence of MPEG-1 Layer III frames with the given bitrate and
// rate, and returns how many there are and the first one.
func walkFrames(t *testing.T, b []byte, bitrate, rate int) (n int, first []byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 4 || b[0] != 0xFF || b[1] != 0xFB {
			t.Fatalf("frame %d: bad header % x", n, b[:min(4, len(b))])
		}
		br, sr := mpeg1L3Bitrates[b[2]>>4], mpeg1SampleRates[(b[2]>>2)&3]
		if br != bitrate || sr != rate {
			t.Fatalf("frame %d: %d kbit/s %d Hz, want %d %d", n, br, sr, bitrate, rate)
		}
		length := 144000*br/sr + int(b[2]>>1&1)
		if length > len(b) {
			t.Fatalf("frame %d: %d bytes, %d left", n, length, len(b))
		}
		if first == nil {
			first = b[:length]
		}
		b = b[length:]
		n++
	}
	return n, first
}

func TestWriteMP3Structure(t *testing.T) {
	for _, o := range []MP3Options{
		{Duration: 10 * time.Second},
		{Duration: 10 * time.Second, Bitrate: 320, SampleRate: 48000, Mono: true, InfoHeader: true},
		{Duration: 7 * time.Second, Bitrate: 32, SampleRate: 32000, Noise: true, Seed: 3, ID3v1: true, Title: "t"},
		{Duration: 90 * time.Second, Bitrate: 56, SampleRate: 44100, InfoHeader: true, Artist: "A", ID3Padding: 100},
	} {
		var buf bytes.Buffer
		if err := WriteMP3(&buf, o); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if bytes.HasPrefix(b, []byte("ID3")) {
			if b[3] != 3 {
				t.Errorf("ID3 version %d, want 3", b[3])
			}
			b = b[10+(int(b[6])<<21|int(b[7])<<14|int(b[8])<<7|int(b[9])):]
		}
		if o.ID3v1 {
			if !bytes.HasPrefix(b[len(b)-128:], []byte("TAG")) {
				t.Fatal("no ID3v1 tag at the end")
			}
			b = b[:len(b)-128]
		}
		o = o.withDefaults()
		n, first := walkFrames(t, b, o.Bitrate, o.SampleRate)
		want := o.Frames()
		if o.InfoHeader {
			want++
			side := 32
			if o.Mono {
				side = 17
			}
			info := first[4+side:]
			if string(info[:4]) != "Info" || binary.BigEndian.Uint32(info[8:]) != uint32(o.Frames()) ||
				binary.BigEndian.Uint32(info[12:]) != uint32(len(b)) {
				t.Errorf("Info header % x, want %d frames %d bytes", info[:16], o.Frames(), len(b))
			}
		}
		if n != want {
			t.Errorf("%d frames, want %d", n, want)
		}
		// The average frame length matches the bitrate exactly (padding rule).
		if exact := float64(o.Bitrate*1000) / 8 * o.AudioDuration().Seconds(); !o.InfoHeader && (float64(len(b)) < exact-1 || float64(len(b)) > exact+1) {
			t.Errorf("%d audio bytes, want %.1f", len(b), exact)
		}
		if d := o.AudioDuration() - o.Duration; d > 27*time.Millisecond || d < -27*time.Millisecond {
			t.Errorf("audio %v for %v asked", o.AudioDuration(), o.Duration)
		}
	}
}

func TestWriteMP3Tags(t *testing.T) {
	var buf bytes.Buffer
	o := MP3Options{Duration: time.Second, Artist: "Artíst", Title: "日本", Album: "x", ID3v1: true}
	if err := WriteMP3(&buf, o); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// Latin-1 artist, UTF-16 title with a byte-order mark.
	if !bytes.Contains(b, []byte("TPE1\x00\x00\x00\x07\x00\x00\x00Art\xedst")) {
		t.Error("TPE1 frame not Latin-1")
	}
	if !bytes.Contains(b, []byte("TIT2\x00\x00\x00\x07\x00\x00\x01\xff\xfe\xe5\x65\x2c\x67")) {
		t.Error("TIT2 frame not UTF-16LE with BOM")
	}
	v1 := b[len(b)-128:]
	if string(v1[3:9]) != "??\x00\x00\x00\x00" || string(v1[33:39]) != "Art\xedst" || v1[127] != 255 {
		t.Errorf("ID3v1 tag % x", v1)
	}
}

func TestWriteMP3Noise(t *testing.T) {
	gen := func(o MP3Options) []byte {
		var buf bytes.Buffer
		if err := WriteMP3(&buf, o); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	o := MP3Options{Duration: time.Second, Noise: true, Seed: 1}
	a, a2 := gen(o), gen(o)
	o.Seed = 2
	b := gen(o)
	silent := gen(MP3Options{Duration: time.Second})
	if !bytes.Equal(a, a2) {
		t.Error("same seed, different files")
	}
	if bytes.Equal(a, b) || len(a) != len(b) {
		t.Error("different seeds should give different files of the same length")
	}
	if bytes.Equal(a, silent) {
		t.Error("noise file equals the silent one")
	}
}

func TestWriteMP3Refuses(t *testing.T) {
	for _, tc := range []struct {
		o    MP3Options
		want string
	}{
		{MP3Options{Bitrate: 100}, "Bitrate 100"},
		{MP3Options{SampleRate: 22050}, "SampleRate 22050"},
		{MP3Options{Duration: -time.Second}, "negative"},
		{MP3Options{Duration: 48 * time.Hour}, "cap"},
		{MP3Options{ID3Version: 5}, "ID3Version 5"},
		{MP3Options{Title: "\xff"}, "UTF-8"},
	} {
		err := WriteMP3(&bytes.Buffer{}, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want one mentioning %q", tc.o, err, tc.want)
		}
	}
}
