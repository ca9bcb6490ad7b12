// Package media reads what Strata announces about a shared file besides its
// name and content ID: the coarse media type, from the file name, and for
// MP3 files the bitrate, sample rate, duration and ID3 tags, from the file's
// own bytes (ParseMP3). Everything here reads untrusted files: allocations
// are bounded by fixed caps and by the file's size, never by a length field
// alone.
package media

import (
	"path/filepath"
	"strings"

	"github.com/strata-p2p/strata/proto"
)

// TypeOf returns the media type implied by a file name's extension,
// case-insensitively; proto.MediaOther when the extension is unknown.
func TypeOf(name string) proto.MediaType {
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(name), "."))
	switch ext {
	case "mp3", "ogg", "oga", "opus", "flac", "wav", "m4a", "aac", "wma":
		return proto.MediaAudio
	case "mp4", "m4v", "mkv", "avi", "webm", "mov", "mpg", "mpeg", "wmv":
		return proto.MediaVideo
	case "jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff":
		return proto.MediaImage
	case "pdf", "txt", "doc", "docx", "odt", "epub", "md", "rtf":
		return proto.MediaDocument
	case "zip", "tar", "gz", "tgz", "bz2", "xz", "7z", "rar":
		return proto.MediaArchive
	case "exe", "msi", "deb", "rpm", "iso", "apk", "dmg":
		return proto.MediaSoftware
	}
	return proto.MediaOther
}

// IsMP3 reports whether name has the .mp3 extension, the files whose
// contents ParseMP3 reads.
func IsMP3(name string) bool {
	return strings.EqualFold(filepath.Ext(name), ".mp3")
}
