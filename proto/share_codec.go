package proto

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// fileEntryFields is the number of fields of a FileEntry on the wire.
const fileEntryFields = 10

// DecodeMsgpack decodes a FileEntry without reflection: share lists are the
// largest frames a supernode decodes (up to 1,000 entries each), so this is
// a hot path. The layout is the array encoding of the struct's fields in
// order; anything else is refused.
func (e *FileEntry) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != fileEntryFields {
		return fmt.Errorf("file entry has %d fields, want %d", n, fileEntryFields)
	}
	l, err := d.DecodeBytesLen()
	if err != nil {
		return fmt.Errorf("file entry content ID: %w", err)
	}
	if l != len(e.ContentID) {
		return fmt.Errorf("file entry content ID of %d bytes, want %d", l, len(e.ContentID))
	}
	if err := d.ReadFull(e.ContentID[:]); err != nil {
		return err
	}
	if e.Name, err = d.DecodeString(); err != nil {
		return fmt.Errorf("file entry name: %w", err)
	}
	if e.Size, err = d.DecodeUint64(); err != nil {
		return fmt.Errorf("file entry size: %w", err)
	}
	m, err := d.DecodeUint8()
	if err != nil {
		return fmt.Errorf("file entry media: %w", err)
	}
	e.Media = MediaType(m)
	for _, p := range []*uint32{&e.Bitrate, &e.SampleRate, &e.Duration} {
		if *p, err = d.DecodeUint32(); err != nil {
			return fmt.Errorf("file entry media fields: %w", err)
		}
	}
	for _, p := range []*string{&e.Artist, &e.Title, &e.Album} {
		if *p, err = d.DecodeString(); err != nil {
			return fmt.Errorf("file entry tags: %w", err)
		}
	}
	return nil
}
