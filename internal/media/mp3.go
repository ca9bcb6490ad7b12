package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf16"
)

// MP3Info is what ParseMP3 reads from an MP3 file.
type MP3Info struct {
	// MPEGVersion is "1", "2" or "2.5"; empty when no audio frame was found.
	MPEGVersion string
	// Bitrate in kbit/s: the first frame's rate for a constant-bitrate file,
	// the average over the stream when a Xing or VBRI header says VBR.
	Bitrate int
	// SampleRate in Hz.
	SampleRate int
	// Channels is 1 or 2.
	Channels int
	// Duration from the frame count of a Xing/Info or VBRI header when there
	// is one, otherwise estimated from the audio bytes and Bitrate.
	Duration time.Duration
	// VBR is set when a "Xing" or VBRI header marks the stream as
	// variable-bitrate ("Info" is LAME's constant-bitrate variant).
	VBR bool
	// Frames is the frame count from a Xing/Info or VBRI header, 0 if none.
	Frames int

	// Tags from ID3v2 (v2.2, v2.3, v2.4), each field falling back to an
	// ID3v1 tag at the end of the file. Valid UTF-8, trimmed; not otherwise
	// cleaned (may hold control characters, may be long).
	Artist, Title, Album string
}

// ErrNoAudioFrame is returned (wrapped) by ParseMP3 when no MPEG Layer III
// frame header was found after the tags.
var ErrNoAudioFrame = errors.New("no MPEG audio Layer III frame found")

// Caps on what ParseMP3 reads into memory, whatever the file says.
const (
	// maxUnsyncTag bounds the part of an unsynchronised ID3v2 tag (the
	// only kind that must be read whole to be decoded) read into memory.
	// Tags of other kinds are read frame by frame.
	maxUnsyncTag = 1 << 20
	// maxTextFrame bounds the bytes read from one text frame. Tags are cut
	// to proto.MaxTagLen (128 bytes) anyway.
	maxTextFrame = 4 << 10
	// syncWindow is how far after the tags the first frame is looked for.
	syncWindow = 128 << 10
	// maxID3Tags is how many back-to-back ID3v2 tags are skipped.
	maxID3Tags = 4
	// minFrameLen is the shortest Layer III frame (MPEG-2, 8 kbit/s,
	// 24 kHz); a Xing or VBRI frame count needing shorter frames to fit the
	// file is a lie and is ignored.
	minFrameLen = 24
)

// ParseMP3 reads the tags and audio properties of the MP3 file r of size
// bytes. It reads at most a few hundred KiB whatever size is, and never
// trusts a length field further than the file size and a fixed cap.
//
// On error the returned MP3Info still holds whatever tags were read, so a
// file with tags but no recognisable audio is still described.
func ParseMP3(r io.ReaderAt, size int64) (MP3Info, error) {
	var info MP3Info
	if size < 0 {
		return info, fmt.Errorf("mp3: negative size %d", size)
	}
	p := &mp3Parser{r: r, size: size}

	audioStart, err := p.id3v2(&info)
	if err != nil {
		return info, err
	}
	audioEnd, err := p.id3v1(&info, audioStart)
	if err != nil {
		return info, err
	}
	if err := p.audio(&info, audioStart, audioEnd); err != nil {
		return info, err
	}
	return info, nil
}

type mp3Parser struct {
	r    io.ReaderAt
	size int64
}

// read returns up to n bytes at off, fewer if the file ends first.
func (p *mp3Parser) read(off int64, n int) ([]byte, error) {
	if off < 0 || off >= p.size || n <= 0 {
		return nil, nil
	}
	if rest := p.size - off; int64(n) > rest {
		n = int(rest)
	}
	b := make([]byte, n)
	m, err := p.r.ReadAt(b, off)
	if m == n {
		return b, nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return b[:m], fmt.Errorf("mp3: read %d bytes at offset %d: %w", n, off, err)
}

// id3v2 parses the ID3v2 tag at the start of the file, if any, and skips
// any tags that follow it. It returns where the audio starts.
func (p *mp3Parser) id3v2(info *MP3Info) (int64, error) {
	var off int64
	for i := range maxID3Tags {
		hdr, err := p.read(off, 10)
		if err != nil {
			return off, err
		}
		if len(hdr) < 10 || string(hdr[:3]) != "ID3" {
			return off, nil
		}
		major, flags := hdr[3], hdr[5]
		bodyLen, ok := syncsafe(hdr[6:10])
		if !ok || hdr[4] == 0xFF {
			return off, nil // not a tag after all
		}
		end := off + 10 + int64(bodyLen)
		if major == 4 && flags&0x10 != 0 {
			end += 10 // footer
		}
		if i == 0 && major >= 2 && major <= 4 {
			if err := p.id3v2Frames(info, off+10, int64(bodyLen), major, flags); err != nil {
				return min(end, p.size), err
			}
		}
		off = min(end, p.size)
	}
	return off, nil
}

// id3v2Frames reads the text frames of a tag body of bodyLen bytes at off.
func (p *mp3Parser) id3v2Frames(info *MP3Info, off, bodyLen int64, major, flags byte) error {
	bodyLen = min(bodyLen, p.size-off)
	var src io.ReaderAt = io.NewSectionReader(p.r, off, bodyLen)
	if flags&0x80 != 0 && major < 4 {
		// Unsynchronisation of the whole tag (v2.2, v2.3): undo it in memory.
		raw, err := p.read(off, int(min(bodyLen, maxUnsyncTag)))
		if err != nil {
			return err
		}
		raw = unsync(raw)
		src, bodyLen = bytes.NewReader(raw), int64(len(raw))
	}
	t := tagReader{src: src, len: bodyLen}

	var pos int64
	if flags&0x40 != 0 { // extended header
		switch major {
		case 2:
			return nil // v2.2 used this bit for compression, which nobody implemented
		case 3:
			b := t.read(0, 4)
			if len(b) < 4 {
				return nil
			}
			pos = 4 + int64(binary.BigEndian.Uint32(b))
		case 4:
			n, ok := syncsafe(t.read(0, 4))
			if !ok {
				return nil
			}
			pos = int64(n)
		}
	}

	hdrLen, idLen := int64(10), 4
	if major == 2 {
		hdrLen, idLen = 6, 3
	}
	for pos+hdrLen <= bodyLen && (info.Artist == "" || info.Title == "" || info.Album == "") {
		h := t.read(pos, int(hdrLen))
		if len(h) < int(hdrLen) || !frameID(h[:idLen]) {
			return nil // padding or garbage: the frames are over
		}
		var id string
		var size int64
		var fflags uint16
		switch major {
		case 2:
			id = string(h[:3])
			size = int64(h[3])<<16 | int64(h[4])<<8 | int64(h[5])
		case 3:
			id = string(h[:4])
			size = int64(binary.BigEndian.Uint32(h[4:8]))
			fflags = binary.BigEndian.Uint16(h[8:10])
		case 4:
			id = string(h[:4])
			if n, ok := syncsafe(h[4:8]); ok {
				size = int64(n)
			} else { // some writers put plain sizes in v2.4 tags
				size = int64(binary.BigEndian.Uint32(h[4:8]))
			}
			fflags = binary.BigEndian.Uint16(h[8:10])
		}
		dataOff := pos + hdrLen
		if size > bodyLen-dataOff {
			return nil // frame runs past the tag
		}
		pos = dataOff + size

		field := textField(info, id)
		if field == nil || *field != "" {
			continue
		}
		data, ok := frameData(t, dataOff, size, major, fflags)
		if ok {
			*field = decodeText(data)
		}
	}
	return nil
}

// frameID reports whether b looks like a frame ID: capital letters and digits.
func frameID(b []byte) bool {
	for _, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return len(b) > 0
}

// textField returns the MP3Info field a frame ID fills, or nil.
func textField(info *MP3Info, id string) *string {
	switch id {
	case "TT2", "TIT2":
		return &info.Title
	case "TP1", "TPE1":
		return &info.Artist
	case "TAL", "TALB":
		return &info.Album
	}
	return nil
}

// frameData returns the payload of a text frame, at most maxTextFrame bytes,
// or false for frames this parser does not decode (compressed, encrypted).
func frameData(t tagReader, off, size int64, major byte, fflags uint16) ([]byte, bool) {
	perFrameUnsync := false
	switch major {
	case 3:
		if fflags&0x00C0 != 0 { // compressed or encrypted
			return nil, false
		}
		if fflags&0x0020 != 0 { // group ID byte
			off, size = off+1, size-1
		}
	case 4:
		if fflags&0x000C != 0 { // compressed or encrypted
			return nil, false
		}
		if fflags&0x0040 != 0 { // group ID byte
			off, size = off+1, size-1
		}
		if fflags&0x0001 != 0 { // data length indicator
			off, size = off+4, size-4
		}
		perFrameUnsync = fflags&0x0002 != 0
	}
	if size <= 0 {
		return nil, false
	}
	b := t.read(off, int(min(size, maxTextFrame)))
	if perFrameUnsync {
		b = unsync(b)
	}
	return b, true
}

// tagReader reads from a tag body of len bytes, returning short slices at
// its end instead of errors: a truncated tag yields what is there.
type tagReader struct {
	src io.ReaderAt
	len int64
}

func (t tagReader) read(off int64, n int) []byte {
	if off < 0 || off >= t.len || n <= 0 {
		return nil
	}
	n = int(min(int64(n), t.len-off))
	b := make([]byte, n)
	m, _ := t.src.ReadAt(b, off)
	return b[:m]
}

// syncsafe decodes a 4-byte syncsafe integer (7 bits per byte).
func syncsafe(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n := 0
	for _, c := range b[:4] {
		if c&0x80 != 0 {
			return 0, false
		}
		n = n<<7 | int(c)
	}
	return n, true
}

// unsync undoes ID3 unsynchronisation: every 0xFF 0x00 becomes 0xFF.
func unsync(b []byte) []byte {
	out := b[:0]
	for i := 0; i < len(b); i++ {
		out = append(out, b[i])
		if b[i] == 0xFF && i+1 < len(b) && b[i+1] == 0x00 {
			i++
		}
	}
	return out
}

// decodeText decodes an ID3v2 text frame payload (encoding byte, text) to
// UTF-8, keeping the first of several null-separated values.
func decodeText(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	enc, b := b[0], b[1:]
	var s string
	switch enc {
	case 0: // ISO-8859-1
		s = latin1(b)
	case 1, 2: // UTF-16 with byte-order mark; v2.4's 2 is big-endian without one
		bigEndian := enc == 2
		if len(b) >= 2 {
			switch {
			case b[0] == 0xFF && b[1] == 0xFE:
				bigEndian, b = false, b[2:]
			case b[0] == 0xFE && b[1] == 0xFF:
				bigEndian, b = true, b[2:]
			}
		}
		units := make([]uint16, 0, len(b)/2)
		for i := 0; i+1 < len(b); i += 2 {
			var u uint16
			if bigEndian {
				u = binary.BigEndian.Uint16(b[i:])
			} else {
				u = binary.LittleEndian.Uint16(b[i:])
			}
			if u == 0 {
				break
			}
			units = append(units, u)
		}
		s = string(utf16.Decode(units))
	case 3: // UTF-8
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		s = strings.ToValidUTF8(string(b), "\uFFFD")
	default:
		return ""
	}
	return strings.TrimSpace(s)
}

// latin1 decodes ISO-8859-1 up to the first NUL.
func latin1(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// id3v1 reads an ID3v1 tag in the last 128 bytes, filling the fields the
// ID3v2 tag left empty. It returns where the audio ends.
func (p *mp3Parser) id3v1(info *MP3Info, audioStart int64) (int64, error) {
	if p.size-128 < audioStart {
		return p.size, nil
	}
	t, err := p.read(p.size-128, 128)
	if err != nil {
		return p.size, err
	}
	if string(t[:3]) != "TAG" {
		return p.size, nil
	}
	for _, f := range []struct {
		dst *string
		b   []byte
	}{{&info.Title, t[3:33]}, {&info.Artist, t[33:63]}, {&info.Album, t[63:93]}} {
		if *f.dst == "" {
			*f.dst = strings.TrimSpace(latin1(f.b))
		}
	}
	return p.size - 128, nil
}

// frameHeader is a decoded MPEG audio Layer III frame header.
type frameHeader struct {
	version    byte // raw bits: 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5
	crc        bool
	bitrate    int // kbit/s
	sampleRate int // Hz
	mono       bool
	length     int // bytes, header included
	samples    int // per frame
}

var (
	bitratesV1 = [16]int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0}
	bitratesV2 = [16]int{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0}
	rates      = [4][3]int{0: {11025, 12000, 8000}, 2: {22050, 24000, 16000}, 3: {44100, 48000, 32000}}
)

// parseHeader decodes a Layer III frame header; false if b is not one
// (including free-format and reserved values, which are not supported).
func parseHeader(b []byte) (frameHeader, bool) {
	var h frameHeader
	if len(b) < 4 || b[0] != 0xFF || b[1]&0xE0 != 0xE0 {
		return h, false
	}
	h.version = (b[1] >> 3) & 3
	layer := (b[1] >> 1) & 3
	brIdx, srIdx := b[2]>>4, (b[2]>>2)&3
	if h.version == 1 || layer != 1 || brIdx == 0 || brIdx == 15 || srIdx == 3 || b[3]&3 == 2 {
		return h, false
	}
	h.crc = b[1]&1 == 0
	h.sampleRate = rates[h.version][srIdx]
	h.mono = b[3]>>6 == 3
	pad := int(b[2]>>1) & 1
	if h.version == 3 {
		h.bitrate = bitratesV1[brIdx]
		h.samples = 1152
		h.length = 144000*h.bitrate/h.sampleRate + pad
	} else {
		h.bitrate = bitratesV2[brIdx]
		h.samples = 576
		h.length = 72000*h.bitrate/h.sampleRate + pad
	}
	return h, true
}

func (h frameHeader) versionString() string {
	switch h.version {
	case 3:
		return "1"
	case 2:
		return "2"
	}
	return "2.5"
}

// sideInfoLen is the length of the side information after the header.
func (h frameHeader) sideInfoLen() int {
	switch {
	case h.version == 3 && h.mono:
		return 17
	case h.version == 3:
		return 32
	case h.mono:
		return 9
	}
	return 17
}

// audio finds the first frame between start and end and derives bitrate,
// sample rate and duration.
func (p *mp3Parser) audio(info *MP3Info, start, end int64) error {
	if end <= start {
		return fmt.Errorf("mp3: %w (no bytes after the tags)", ErrNoAudioFrame)
	}
	win, err := p.read(start, int(min(end-start, syncWindow)))
	if err != nil {
		return err
	}
	for i := 0; i+4 <= len(win); i++ {
		if win[i] != 0xFF {
			continue
		}
		h, ok := parseHeader(win[i:])
		if !ok {
			continue
		}
		frameStart := start + int64(i)
		next := frameStart + int64(h.length)
		if next > end {
			continue
		}
		if next+4 <= end {
			// The next frame must follow where this one says it ends.
			nb := win[min(next-start, int64(len(win))):]
			if len(nb) < 4 {
				if nb, err = p.read(next, 4); err != nil {
					return err
				}
			}
			n, ok := parseHeader(nb)
			if !ok || n.version != h.version || n.sampleRate != h.sampleRate {
				continue
			}
		}
		return p.describe(info, h, frameStart, end)
	}
	return fmt.Errorf("mp3: %w in the %d bytes after the tags", ErrNoAudioFrame, len(win))
}

// describe fills info from the first frame h at frameStart, reading its
// Xing/Info or VBRI header when it carries one.
func (p *mp3Parser) describe(info *MP3Info, h frameHeader, frameStart, end int64) error {
	info.MPEGVersion = h.versionString()
	info.SampleRate = h.sampleRate
	info.Bitrate = h.bitrate
	info.Channels = 2
	if h.mono {
		info.Channels = 1
	}
	audioBytes := end - frameStart

	f, err := p.read(frameStart, h.length)
	if err != nil {
		return err
	}
	frames, streamBytes, vbr, found := xingHeader(f, h)
	if !found {
		frames, streamBytes, found = vbriHeader(f)
		vbr = found
	}
	if found && frames > 0 && int64(frames)*minFrameLen <= audioBytes {
		info.Frames = int(frames)
		info.VBR = vbr
		secs := float64(frames) * float64(h.samples) / float64(h.sampleRate)
		info.Duration = time.Duration(secs * float64(time.Second))
		if vbr {
			// A byte count the frames cannot fit in, or the file cannot
			// hold, is a lie: use the audio bytes instead.
			n := int64(streamBytes)
			if n < int64(frames)*minFrameLen || n > audioBytes {
				n = audioBytes
			}
			info.Bitrate = max(1, int(float64(n)*8/secs/1000+0.5))
		}
		return nil
	}
	// Constant bitrate: the audio bytes at the frame's rate.
	info.Duration = time.Duration(float64(audioBytes) * 8 / float64(h.bitrate*1000) * float64(time.Second))
	return nil
}

// xingHeader reads a "Xing" or "Info" header in frame f: frame count and
// byte count (0 when absent), and whether it says VBR ("Xing").
func xingHeader(f []byte, h frameHeader) (frames, nbytes uint32, vbr, found bool) {
	offs := []int{4 + h.sideInfoLen()}
	if h.crc {
		offs = append(offs, 6+h.sideInfoLen())
	}
	for _, off := range offs {
		if off+8 > len(f) {
			continue
		}
		tag := string(f[off : off+4])
		if tag != "Xing" && tag != "Info" {
			continue
		}
		flags := binary.BigEndian.Uint32(f[off+4:])
		q := off + 8
		if flags&1 != 0 {
			if q+4 > len(f) {
				return 0, 0, false, false
			}
			frames = binary.BigEndian.Uint32(f[q:])
			q += 4
		}
		if flags&2 != 0 && q+4 <= len(f) {
			nbytes = binary.BigEndian.Uint32(f[q:])
		}
		return frames, nbytes, tag == "Xing", true
	}
	return 0, 0, false, false
}

// vbriHeader reads a Fraunhofer VBRI header, always 32 bytes after the
// frame header.
func vbriHeader(f []byte) (frames, nbytes uint32, found bool) {
	const off = 4 + 32
	if off+18 > len(f) || string(f[off:off+4]) != "VBRI" {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(f[off+14:]), binary.BigEndian.Uint32(f[off+10:]), true
}
