package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// Frame limits.
const (
	HeaderSize      = 6       // 2-byte type + 4-byte length
	DefaultMaxFrame = 1 << 20 // bytes of body a reader accepts unless told otherwise
	MaxDepth        = 16      // nesting of msgpack containers in a body
	readChunk       = 64 << 10
)

// Encode returns the msgpack body of m (structs as arrays, compact ints).
func Encode(m Message) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.UseArrayEncodedStructs(true)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.Type(), err)
	}
	return buf.Bytes(), nil
}

// AppendFrame appends the frame for m to dst.
func AppendFrame(dst []byte, m Message) ([]byte, error) {
	body, err := Encode(m)
	if err != nil {
		return dst, err
	}
	if len(body) > DefaultMaxFrame {
		return dst, Errorf(CodeFrameTooLarge, "%s body is %d bytes, over the cap of %d", m.Type(), len(body), DefaultMaxFrame)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Type()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...), nil
}

// Decode decodes a body of type t. Unknown types return a *Error with
// CodeProtocol; malformed bodies a *Error with CodeMalformed.
func Decode(t MsgType, body []byte) (Message, error) {
	m := New(t)
	if m == nil {
		return nil, Errorf(CodeProtocol, "unknown message %s", t)
	}
	if err := CheckBody(body); err != nil {
		return nil, Errorf(CodeMalformed, "%s: %v", t, err)
	}
	if err := msgpack.Unmarshal(body, m); err != nil {
		return nil, Errorf(CodeMalformed, "%s: %v", t, err)
	}
	return m, nil
}

// CheckBody walks a msgpack value without decoding it and refuses any
// container or string that claims more elements or bytes than remain, nesting
// deeper than MaxDepth, reserved codes, and trailing bytes. After it passes,
// no length in the body can make a decoder allocate more than the body holds.
func CheckBody(b []byte) error {
	var stack [MaxDepth + 1]int
	depth := 0
	stack[0] = 1
	i := 0
	need := func(n int) error {
		if n < 0 || n > len(b)-i {
			return fmt.Errorf("length %d at offset %d runs past the end (%d bytes left)", n, i, len(b)-i)
		}
		return nil
	}
	for depth >= 0 {
		if stack[depth] == 0 {
			depth--
			continue
		}
		stack[depth]--
		if i >= len(b) {
			return errors.New("truncated body")
		}
		c := b[i]
		i++
		skip, elems := 0, -1
		switch {
		case c <= 0x7f || c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c&0xf0 == 0x80:
			elems = 2 * int(c&0x0f)
		case c&0xf0 == 0x90:
			elems = int(c & 0x0f)
		case c&0xe0 == 0xa0:
			skip = int(c & 0x1f)
		default:
			var n int
			var err error
			switch c {
			case 0xcc, 0xd0:
				skip = 1
			case 0xcd, 0xd1:
				skip = 2
			case 0xca, 0xce, 0xd2:
				skip = 4
			case 0xcb, 0xcf, 0xd3:
				skip = 8
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
				skip = 1 + 1<<(c-0xd4)
			case 0xc4, 0xd9:
				n, err = readLen(b, &i, 1)
				skip = n
			case 0xc5, 0xda:
				n, err = readLen(b, &i, 2)
				skip = n
			case 0xc6, 0xdb:
				n, err = readLen(b, &i, 4)
				skip = n
			case 0xc7:
				n, err = readLen(b, &i, 1)
				skip = n + 1
			case 0xc8:
				n, err = readLen(b, &i, 2)
				skip = n + 1
			case 0xc9:
				n, err = readLen(b, &i, 4)
				skip = n + 1
			case 0xdc:
				elems, err = readLen(b, &i, 2)
			case 0xdd:
				elems, err = readLen(b, &i, 4)
			case 0xde:
				n, err = readLen(b, &i, 2)
				elems = 2 * n
			case 0xdf:
				n, err = readLen(b, &i, 4)
				elems = 2 * n
			default:
				return fmt.Errorf("reserved msgpack code 0x%02x at offset %d", c, i-1)
			}
			if err != nil {
				return err
			}
		}
		if err := need(skip); err != nil {
			return err
		}
		i += skip
		if elems > 0 {
			if err := need(elems); err != nil {
				return err
			}
			if depth == MaxDepth {
				return fmt.Errorf("nesting deeper than %d", MaxDepth)
			}
			depth++
			stack[depth] = elems
		}
	}
	if i != len(b) {
		return fmt.Errorf("%d trailing bytes after the body", len(b)-i)
	}
	return nil
}

func readLen(b []byte, i *int, size int) (int, error) {
	if len(b)-*i < size {
		return 0, errors.New("truncated length")
	}
	var n uint64
	for k := 0; k < size; k++ {
		n = n<<8 | uint64(b[*i+k])
	}
	*i += size
	if n > uint64(len(b)) {
		return 0, fmt.Errorf("length %d is longer than the whole body (%d bytes)", n, len(b))
	}
	return int(n), nil
}

// Reader reads frames from a stream. It checks each frame's length against
// its cap before allocating, grows its buffer only as bytes arrive, and skips
// frames of unknown type (counting them in Skipped).
type Reader struct {
	r       io.Reader
	max     int
	hdr     [HeaderSize]byte
	buf     []byte
	Skipped int // frames of unknown type skipped so far
}

// NewReader returns a Reader accepting bodies of at most maxFrame bytes
// (DefaultMaxFrame when maxFrame <= 0).
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Reader{r: r, max: maxFrame}
}

// ReadFrame reads one frame. The body is valid until the next call. At a
// clean end of stream it returns io.EOF; a frame cut short returns a *Error
// with CodeMalformed, an oversized one CodeFrameTooLarge.
func (r *Reader) ReadFrame() (MsgType, []byte, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return 0, nil, Errorf(CodeMalformed, "truncated frame header")
		}
		return 0, nil, err
	}
	t := MsgType(binary.BigEndian.Uint16(r.hdr[:2]))
	n := binary.BigEndian.Uint32(r.hdr[2:])
	if uint64(n) > uint64(r.max) {
		return t, nil, Errorf(CodeFrameTooLarge, "%s frame of %d bytes is over the cap of %d", t, n, r.max)
	}
	r.buf = r.buf[:0]
	for len(r.buf) < int(n) {
		want := min(int(n)-len(r.buf), readChunk)
		if cap(r.buf)-len(r.buf) < want {
			grown := make([]byte, len(r.buf), min(int(n), max(2*cap(r.buf), len(r.buf)+want)))
			copy(grown, r.buf)
			r.buf = grown
		}
		k, err := io.ReadFull(r.r, r.buf[len(r.buf):len(r.buf)+want])
		r.buf = r.buf[:len(r.buf)+k]
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return t, nil, Errorf(CodeMalformed, "%s frame truncated: header says %d bytes, got %d", t, n, len(r.buf))
			}
			return t, nil, err
		}
	}
	return t, r.buf, nil
}

// ReadMsg reads frames until one of a known type arrives and decodes it.
func (r *Reader) ReadMsg() (Message, error) {
	for {
		t, body, err := r.ReadFrame()
		if err != nil {
			return nil, err
		}
		if New(t) == nil {
			r.Skipped++
			continue
		}
		return Decode(t, body)
	}
}

// Writer writes frames to a stream, one Write call per frame. It reuses its
// encoder and buffer across frames.
type Writer struct {
	w   io.Writer
	buf bytes.Buffer
	enc *msgpack.Encoder
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteMsg encodes and writes m as one frame.
func (w *Writer) WriteMsg(m Message) error {
	if w.enc == nil {
		w.enc = msgpack.NewEncoder(&w.buf)
		w.enc.UseCompactInts(true)
		w.enc.UseArrayEncodedStructs(true)
	}
	w.buf.Reset()
	w.buf.Write(make([]byte, HeaderSize))
	if err := w.enc.Encode(m); err != nil {
		return fmt.Errorf("encode %s: %w", m.Type(), err)
	}
	b := w.buf.Bytes()
	n := len(b) - HeaderSize
	if n > DefaultMaxFrame {
		return Errorf(CodeFrameTooLarge, "%s body is %d bytes, over the cap of %d", m.Type(), n, DefaultMaxFrame)
	}
	binary.BigEndian.PutUint16(b, uint16(m.Type()))
	binary.BigEndian.PutUint32(b[2:], uint32(n))
	_, err := w.w.Write(b)
	if w.buf.Cap() > 4*readChunk {
		w.buf = bytes.Buffer{} // don't pin a large buffer after a big frame
	}
	return err
}
