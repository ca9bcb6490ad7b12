// Package proto is Strata's wire protocol and nothing else: message types,
// framing, limits, the protocol version and error codes. It imports nothing
// of Strata's. docs/PROTOCOL.md describes every message in prose.
//
// A frame is a 2-byte message type, a 4-byte body length (both big-endian)
// and a msgpack body in which structs are encoded as arrays. The length is
// checked against the reader's cap before anything is allocated, and the body
// is checked structurally (no container may claim more elements than there
// are bytes left) before it is decoded, so decoding a frame of N bytes
// allocates O(N). Unknown message types are returned as such and skipped by
// callers; the enum below is append-only.
package proto
