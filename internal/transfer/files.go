package transfer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/strata-p2p/strata/internal/piecehash"
	"github.com/strata-p2p/strata/internal/shares"
	"github.com/strata-p2p/strata/proto"
)

// checkName refuses names that are not a plain, visible file name: a name
// comes from search hits, that is from other peers.
func checkName(name string) error {
	e := proto.FileEntry{ContentID: proto.ContentID{1}, Name: name}
	if err := proto.ValidateEntry(&e); err != nil {
		return err
	}
	if strings.HasPrefix(name, ".") {
		return fmt.Errorf("file name %q: hidden names (starting with \".\") are not shared; choose another name", name)
	}
	if strings.HasSuffix(name, shares.PartSuffix) {
		return fmt.Errorf("file name %q: names ending in %s are partial downloads; choose another name", name, shares.PartSuffix)
	}
	return nil
}

// partName is the part file's name: hidden, with the content ID's prefix so
// two downloads of different files under one name never share a part file,
// and the part suffix so no scan shares it.
func partName(name string, cid proto.ContentID) string {
	suffix := "." + cid.Short() + shares.PartSuffix
	keep := proto.MaxNameLen - 1 - len(suffix)
	for len(name) > keep {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	return "." + name + suffix
}

// numbered returns name with " (k)" before its extension: "a.mp3" -> "a (1).mp3".
func numbered(name string, k int) string {
	ext := filepath.Ext(name)
	if ext == name {
		ext = ""
	}
	return fmt.Sprintf("%s (%d)%s", strings.TrimSuffix(name, ext), k, ext)
}

// maxNumbered bounds the "name (k).ext" candidates tried.
const maxNumbered = 1000

// place gives the complete, fsynced part file its final name in dir without
// ever replacing another file: the first of name, "name (1).ext", ... that
// is free is hard-linked to the part file (link fails if the name exists;
// where links are unsupported, rename after checking the name is free). If a
// candidate already holds the same content, the part file is dropped and
// that path returned.
func place(dir, part, name string, cid proto.ContentID, size uint64) (string, error) {
	for k := 0; k <= maxNumbered; k++ {
		cand := name
		if k > 0 {
			cand = numbered(name, k)
		}
		if err := checkName(cand); err != nil {
			return "", err
		}
		path := filepath.Join(dir, cand)
		fi, err := os.Lstat(path)
		switch {
		case err == nil:
			if fi.Mode().IsRegular() && uint64(fi.Size()) == size && sameContent(path, cid, size) {
				_ = os.Remove(part)
				return path, nil
			}
			continue
		case !errors.Is(err, fs.ErrNotExist):
			return "", err
		}
		err = os.Link(part, path)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			// No hard links here (some file systems): rename instead.
			if err := os.Rename(part, path); err != nil {
				return "", err
			}
			return path, nil
		}
		if err := os.Remove(part); err != nil {
			return "", err
		}
		return path, nil
	}
	return "", fmt.Errorf("%q and %d numbered variants already exist in %s; rename or move some of them", name, maxNumbered, dir)
}

// sameContent reports whether the file at path has content ID cid.
func sameContent(path string, cid proto.ContentID, size uint64) bool {
	hashes, err := filePieces(path, size)
	return err == nil && proto.ContentIDOf(size, hashes) == cid
}

// filePieces returns the piece hashes of the first size bytes of the file
// at path.
func filePieces(path string, size uint64) ([]proto.PieceHash, error) {
	n := proto.NumPieces(size)
	if n < 0 || n > maxPieces {
		return nil, fmt.Errorf("%d bytes is more than a download may have", size)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	hashes := make([]proto.PieceHash, n)
	buf := make([]byte, proto.PieceSize)
	for i := range hashes {
		l := pieceLen(size, i)
		if _, err := io.ReadFull(f, buf[:l]); err != nil {
			return nil, err
		}
		hashes[i] = piecehash.Sum(buf[:l])
	}
	return hashes, nil
}
