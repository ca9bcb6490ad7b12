// Package mediagen writes synthetic media files for tests and for the lab's
// generated share folders: files that are valid enough for Strata's metadata
// parsers and for ordinary players, cheap to produce, and distinct from one
// another when asked.
package mediagen

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
	"unicode/utf8"
)

// MP3Options describes the file WriteMP3 produces: an MPEG-1 Layer III
// constant-bitrate stream, optionally preceded by an ID3v2 tag and an
// "Info" (Xing CBR) frame and followed by an ID3v1 tag. The zero value is
// a valid, empty (zero-frame) 128 kbit/s 44.1 kHz stereo file.
type MP3Options struct {
	// Duration of the audio. It is rounded to a whole number of frames
	// (1152 samples: 26.1 ms at 44.1 kHz); see Frames.
	Duration time.Duration
	// Bitrate in kbit/s, one of the MPEG-1 Layer III rates 32, 40, 48, 56,
	// 64, 80, 96, 112, 128, 160, 192, 224, 256, 320. Zero means 128.
	Bitrate int
	// SampleRate in Hz: 32000, 44100 or 48000. Zero means 44100.
	SampleRate int
	// Mono writes single-channel frames; otherwise joint stereo.
	Mono bool

	// Noise fills the frame bodies with pseudo-random bytes drawn from Seed,
	// so that files of equal options but different seeds differ (and have
	// different content IDs). The bytes sit in the frames' ancillary data:
	// the side information is zero, so players still decode silence.
	// Without Noise the bodies are zero.
	Noise bool
	Seed  uint64

	// InfoHeader writes a first frame carrying a Xing "Info" header with the
	// frame and byte counts, as LAME does for CBR files.
	InfoHeader bool

	// Artist, Title and Album go into an ID3v2 tag (written when any is
	// non-empty or ID3Padding > 0). Text that is not Latin-1 is written as
	// UTF-16 with a byte-order mark (ID3v2.2, v2.3) or as UTF-8 (v2.4).
	Artist, Title, Album string
	// ID3Version is the ID3v2 major version: 2, 3 or 4. Zero means 3.
	ID3Version int
	// ID3Padding is the number of zero bytes after the tag's frames.
	ID3Padding int

	// ID3v1 appends a 128-byte ID3v1 tag with the same fields, in Latin-1,
	// cut to 30 bytes each, '?' standing for characters Latin-1 lacks.
	ID3v1 bool
}

// MPEG-1 Layer III tables.
var (
	mpeg1L3Bitrates  = [...]int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}
	mpeg1SampleRates = [...]int{44100, 48000, 32000}
)

const (
	samplesPerFrame = 1152 // MPEG-1 Layer III
	maxDuration     = 24 * time.Hour
	maxID3Padding   = 1 << 20
	maxTagText      = 1 << 16 // bytes per text field
)

// withDefaults returns o with its zero fields replaced by their defaults.
func (o MP3Options) withDefaults() MP3Options {
	if o.Bitrate == 0 {
		o.Bitrate = 128
	}
	if o.SampleRate == 0 {
		o.SampleRate = 44100
	}
	if o.ID3Version == 0 {
		o.ID3Version = 3
	}
	return o
}

// validate checks o (after defaults) and says which option is wrong.
func (o MP3Options) validate() (brIndex, srIndex int, err error) {
	brIndex, srIndex = -1, -1
	for i, b := range mpeg1L3Bitrates {
		if i > 0 && b == o.Bitrate {
			brIndex = i
		}
	}
	for i, s := range mpeg1SampleRates {
		if s == o.SampleRate {
			srIndex = i
		}
	}
	switch {
	case brIndex < 0:
		return 0, 0, fmt.Errorf("mediagen: Bitrate %d kbit/s is not an MPEG-1 Layer III rate; use one of %v", o.Bitrate, mpeg1L3Bitrates[1:])
	case srIndex < 0:
		return 0, 0, fmt.Errorf("mediagen: SampleRate %d Hz is not an MPEG-1 rate; use 32000, 44100 or 48000", o.SampleRate)
	case o.Duration < 0 || o.ID3Padding < 0:
		return 0, 0, errors.New("mediagen: Duration and ID3Padding must not be negative")
	case o.Duration > maxDuration:
		return 0, 0, fmt.Errorf("mediagen: Duration %v is over the cap of %v", o.Duration, maxDuration)
	case o.ID3Padding > maxID3Padding:
		return 0, 0, fmt.Errorf("mediagen: ID3Padding %d is over the cap of %d bytes", o.ID3Padding, maxID3Padding)
	case o.ID3Version < 2 || o.ID3Version > 4:
		return 0, 0, fmt.Errorf("mediagen: ID3Version %d: use 2, 3 or 4", o.ID3Version)
	}
	for _, s := range []string{o.Artist, o.Title, o.Album} {
		if len(s) > maxTagText || !utf8.ValidString(s) {
			return 0, 0, fmt.Errorf("mediagen: tag text must be valid UTF-8 of at most %d bytes", maxTagText)
		}
	}
	return brIndex, srIndex, nil
}

// Frames returns the number of audio frames WriteMP3 writes for o (not
// counting the Info frame): Duration rounded to the nearest whole frame.
func (o MP3Options) Frames() int {
	o = o.withDefaults()
	if o.Duration <= 0 || o.SampleRate <= 0 {
		return 0
	}
	samples := o.Duration.Seconds() * float64(o.SampleRate)
	return int(samples/samplesPerFrame + 0.5)
}

// AudioDuration returns the exact playing time of the frames WriteMP3 writes.
func (o MP3Options) AudioDuration() time.Duration {
	o = o.withDefaults()
	return time.Duration(int64(o.Frames()) * samplesPerFrame * int64(time.Second) / int64(o.SampleRate))
}

// WriteMP3 writes the file described by o to w.
func WriteMP3(w io.Writer, o MP3Options) error {
	o = o.withDefaults()
	brIndex, srIndex, err := o.validate()
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if o.Artist != "" || o.Title != "" || o.Album != "" || o.ID3Padding > 0 {
		if _, err := bw.Write(id3v2Tag(o)); err != nil {
			return err
		}
	}
	if err := writeFrames(bw, o, brIndex, srIndex); err != nil {
		return err
	}
	if o.ID3v1 {
		if _, err := bw.Write(id3v1Tag(o)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// writeFrames writes the Info frame (if asked for) and the audio frames.
// Frame lengths follow the padding rule: a frame is 144*bitrate/rate bytes
// rounded down, plus one padding byte whenever the running remainder says
// the stream has fallen a byte behind the exact rate.
func writeFrames(w io.Writer, o MP3Options, brIndex, srIndex int) error {
	frames := o.Frames()
	total := frames
	if o.InfoHeader {
		total++
	}
	num := 144 * 1000 * o.Bitrate
	base, rem := num/o.SampleRate, num%o.SampleRate
	sideInfo := 32
	mode := byte(0x44) // joint stereo, original
	if o.Mono {
		sideInfo = 17
		mode = 0xC4 // single channel, original
	}

	// Precompute the padding pattern to know the stream length for the Info header.
	pads := make([]bool, total)
	acc, streamBytes := 0, 0
	for i := range pads {
		acc += rem
		if acc >= o.SampleRate {
			acc -= o.SampleRate
			pads[i] = true
		}
		streamBytes += base
		if pads[i] {
			streamBytes++
		}
	}

	var rng *rand.Rand
	if o.Noise {
		rng = rand.New(rand.NewPCG(o.Seed, 0x5354524154414d50)) // "STRATAMP"
	}
	frame := make([]byte, base+1)
	for i := range total {
		n := base
		var pad byte
		if pads[i] {
			n++
			pad = 0x02
		}
		f := frame[:n]
		clear(f)
		f[0] = 0xFF
		f[1] = 0xFB // MPEG-1, Layer III, no CRC
		f[2] = byte(brIndex)<<4 | byte(srIndex)<<2 | pad
		f[3] = mode
		body := f[4+sideInfo:]
		switch {
		case i == 0 && o.InfoHeader:
			copy(body, "Info")
			binary.BigEndian.PutUint32(body[4:], 0x3) // frames and bytes fields present
			binary.BigEndian.PutUint32(body[8:], uint32(frames))
			binary.BigEndian.PutUint32(body[12:], uint32(streamBytes))
		case rng != nil:
			for j := 0; j < len(body); j += 8 {
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], rng.Uint64())
				copy(body[j:], b[:])
			}
		}
		if _, err := w.Write(f); err != nil {
			return err
		}
	}
	return nil
}

// id3v2Tag builds the ID3v2 tag for o.
func id3v2Tag(o MP3Options) []byte {
	var frames []byte
	ids := map[int][3]string{
		2: {"TP1", "TT2", "TAL"},
		3: {"TPE1", "TIT2", "TALB"},
		4: {"TPE1", "TIT2", "TALB"},
	}[o.ID3Version]
	for i, text := range []string{o.Artist, o.Title, o.Album} {
		if text == "" {
			continue
		}
		body := encodeText(text, o.ID3Version)
		frames = append(frames, ids[i]...)
		switch o.ID3Version {
		case 2:
			frames = append(frames, byte(len(body)>>16), byte(len(body)>>8), byte(len(body)))
		case 3:
			frames = binary.BigEndian.AppendUint32(frames, uint32(len(body)))
			frames = append(frames, 0, 0)
		case 4:
			frames = appendSyncsafe(frames, len(body))
			frames = append(frames, 0, 0)
		}
		frames = append(frames, body...)
	}
	frames = append(frames, make([]byte, o.ID3Padding)...)

	tag := []byte{'I', 'D', '3', byte(o.ID3Version), 0, 0}
	tag = appendSyncsafe(tag, len(frames))
	return append(tag, frames...)
}

// encodeText returns an ID3v2 text frame body: encoding byte, then the text.
func encodeText(s string, version int) []byte {
	latin1 := true
	for _, r := range s {
		if r > 0xFF {
			latin1 = false
			break
		}
	}
	if latin1 {
		b := []byte{0}
		for _, r := range s {
			b = append(b, byte(r))
		}
		return b
	}
	if version == 4 {
		return append([]byte{3}, s...)
	}
	b := []byte{1, 0xFF, 0xFE} // UTF-16, little-endian byte-order mark
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			hi, lo := 0xD800+(r>>10), 0xDC00+(r&0x3FF)
			b = binary.LittleEndian.AppendUint16(b, uint16(hi))
			b = binary.LittleEndian.AppendUint16(b, uint16(lo))
			continue
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(r))
	}
	return b
}

// appendSyncsafe appends n as a 4-byte syncsafe integer (7 bits per byte).
func appendSyncsafe(b []byte, n int) []byte {
	return append(b, byte(n>>21)&0x7F, byte(n>>14)&0x7F, byte(n>>7)&0x7F, byte(n)&0x7F)
}

// id3v1Tag builds the 128-byte ID3v1 tag for o.
func id3v1Tag(o MP3Options) []byte {
	t := make([]byte, 128)
	copy(t, "TAG")
	putLatin1(t[3:33], o.Title)
	putLatin1(t[33:63], o.Artist)
	putLatin1(t[63:93], o.Album)
	t[127] = 255 // no genre
	return t
}

func putLatin1(dst []byte, s string) {
	i := 0
	for _, r := range s {
		if i == len(dst) {
			return
		}
		if r > 0xFF {
			r = '?'
		}
		dst[i] = byte(r)
		i++
	}
}
