package proto

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ContentID names a file by its content: the BLAKE3 hash of the file's size
// and piece-hash list (see docs/PROTOCOL.md, "Content IDs"). Two files with the same bytes
// have the same ContentID wherever they are shared, so a download can take
// pieces from any holder and verify each one.
type ContentID [32]byte

// String returns the lowercase hex form used on the command line.
func (c ContentID) String() string { return hex.EncodeToString(c[:]) }

// Short returns the first 12 hex digits, for logs and tables.
func (c ContentID) Short() string { return c.String()[:12] }

// IsZero reports whether c is the zero ContentID.
func (c ContentID) IsZero() bool { return c == ContentID{} }

// ParseContentID parses the 64-hex-digit text form. Anything else (including a
// path such as "../../etc/passwd") is refused with an error that says so.
func ParseContentID(s string) (ContentID, error) {
	var c ContentID
	s = strings.TrimSpace(s)
	if len(s) != 2*len(c) {
		return c, fmt.Errorf("content ID %q: want %d hex digits, got %d characters", s, 2*len(c), len(s))
	}
	if _, err := hex.Decode(c[:], []byte(s)); err != nil {
		return c, fmt.Errorf("content ID %q: not hexadecimal", s)
	}
	return c, nil
}

// MarshalJSON lets ContentID print as hex in JSON. (not MarshalText: msgpack would use that on the wire)
func (c ContentID) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, c.String()), nil }

// UnmarshalJSON parses the hex form.
func (c *ContentID) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("want a quoted string, got %s", b)
	}
	v, err := ParseContentID(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// MediaType is the coarse kind of a shared file, derived from its extension
// and, for audio, confirmed by its content. Append-only: values are on the wire.
type MediaType uint8

const (
	MediaOther    MediaType = 0
	MediaAudio    MediaType = 1
	MediaVideo    MediaType = 2
	MediaImage    MediaType = 3
	MediaDocument MediaType = 4
	MediaArchive  MediaType = 5
	MediaSoftware MediaType = 6
)

var mediaNames = [...]string{"other", "audio", "video", "image", "document", "archive", "software"}

func (m MediaType) String() string {
	if int(m) < len(mediaNames) {
		return mediaNames[m]
	}
	return fmt.Sprintf("media(%d)", uint8(m))
}

// ParseMediaType maps a name such as "audio" to its MediaType.
func ParseMediaType(s string) (MediaType, bool) {
	for i, n := range mediaNames {
		if strings.EqualFold(s, n) {
			return MediaType(i), true
		}
	}
	return 0, false
}

// MarshalJSON prints the name in JSON. (not MarshalText: msgpack would use that on the wire)
func (m MediaType) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, m.String()), nil }

// UnmarshalJSON parses a media type name.
func (m *MediaType) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("media type: want a quoted name, got %s", b)
	}
	v, ok := ParseMediaType(s)
	if !ok {
		return fmt.Errorf("unknown media type %q (want one of %s)", s, strings.Join(mediaNames[:], ", "))
	}
	*m = v
	return nil
}

// FileEntry describes one shared file: Napster's "<filename> <md5> <size>
// <bitrate> <frequency> <time>" plus tags. Leaves send lists of these to their
// supernode; supernodes index them and return them in hits.
type FileEntry struct {
	ContentID  ContentID `json:"content_id"`
	Name       string    `json:"name"` // base name, no directories
	Size       uint64    `json:"size"` // bytes
	Media      MediaType `json:"media"`
	Bitrate    uint32    `json:"bitrate,omitempty"`     // kbit/s, audio only
	SampleRate uint32    `json:"sample_rate,omitempty"` // Hz, audio only
	Duration   uint32    `json:"duration,omitempty"`    // seconds, audio only
	Artist     string    `json:"artist,omitempty"`
	Title      string    `json:"title,omitempty"`
	Album      string    `json:"album,omitempty"`
}

// Limits on a FileEntry's text fields. Entries over them are refused by
// ValidateEntry; they bound what a supernode stores per file.
const (
	MaxNameLen = 255 // bytes of UTF-8
	MaxTagLen  = 128 // bytes of UTF-8, each of Artist, Title, Album
)

// ValidateEntry checks a FileEntry received from the network: a non-empty
// name of valid UTF-8 with no control characters or path separators, fields
// within their caps, a non-zero content ID. The error says which rule failed.
func ValidateEntry(e *FileEntry) error {
	if e.ContentID.IsZero() {
		return fmt.Errorf("file entry %q: zero content ID", e.Name)
	}
	if err := validText("name", e.Name, MaxNameLen, false); err != nil {
		return err
	}
	if strings.ContainsAny(e.Name, `/\`) || e.Name == "." || e.Name == ".." {
		return fmt.Errorf("file entry %q: name must not contain a path", e.Name)
	}
	for _, f := range []struct{ field, v string }{{"artist", e.Artist}, {"title", e.Title}, {"album", e.Album}} {
		if err := validText(f.field, f.v, MaxTagLen, true); err != nil {
			return err
		}
	}
	return nil
}

func validText(field, s string, max int, emptyOK bool) error {
	if s == "" {
		if emptyOK {
			return nil
		}
		return fmt.Errorf("file entry: empty %s", field)
	}
	if len(s) > max {
		return fmt.Errorf("file entry: %s is %d bytes, over the cap of %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("file entry: %s is not valid UTF-8", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("file entry: %s contains control character %U", field, r)
		}
	}
	return nil
}
