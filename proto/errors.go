package proto

import (
	"errors"
	"fmt"
)

// ErrorCode is sent as a QUIC application error code when Strata closes a
// stream or a connection, and inside Error messages. Append-only.
type ErrorCode uint64

const (
	CodeOK              ErrorCode = 0x00 // normal close
	CodeProtocol        ErrorCode = 0x01 // message out of order or not allowed here
	CodeFrameTooLarge   ErrorCode = 0x02 // frame length over the reader's cap
	CodeMalformed       ErrorCode = 0x03 // frame or body does not decode
	CodeVersionMismatch ErrorCode = 0x04 // no protocol version in common
	CodePeerIDMismatch  ErrorCode = 0x05 // the peer is not who the dialer expected
	CodeRateLimited     ErrorCode = 0x06 // too many requests; try later
	CodeFull            ErrorCode = 0x07 // no capacity (leaf slots, upload slots)
	CodeNotFound        ErrorCode = 0x08 // no such file, query or peer
	CodeRefused         ErrorCode = 0x09 // not allowed for this peer
	CodeInternal        ErrorCode = 0x0a // the sender failed; not the receiver's fault
	CodeShutdown        ErrorCode = 0x0b // the sender is going away
	CodeTimeout         ErrorCode = 0x0c // the other end was too slow
	CodeBadRequest      ErrorCode = 0x0d // request is well-formed but invalid
)

var codeNames = map[ErrorCode]string{
	CodeOK: "ok", CodeProtocol: "protocol violation", CodeFrameTooLarge: "frame too large",
	CodeMalformed: "malformed message", CodeVersionMismatch: "protocol version mismatch",
	CodePeerIDMismatch: "peer ID mismatch", CodeRateLimited: "rate limited", CodeFull: "full",
	CodeNotFound: "not found", CodeRefused: "refused", CodeInternal: "internal error",
	CodeShutdown: "shutting down", CodeTimeout: "timeout", CodeBadRequest: "bad request",
}

func (c ErrorCode) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("error code 0x%x", uint64(c))
}

// Error is a protocol error with its code. Readers return *Error for bad
// frames so that the caller can close the stream with Code.
type Error struct {
	Code ErrorCode
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Msg) }

// Errorf builds an *Error.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the ErrorCode carried by err, or CodeInternal.
func CodeOf(err error) ErrorCode {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CodeInternal
}
