// Package transfer moves files between peers: an Uploader serves piece-hash
// lists and byte ranges of shared files, and a Manager downloads files by
// content ID from several holders at once, verifying every piece before it
// touches the disk and resuming interrupted downloads.
//
// # Wire use
//
// Every request opens its own stream (see docs/PROTOCOL.md):
//
//	downloader                              holder
//	PiecesRequest{cid, First, Count} ─────►
//	                                 ◄───── Pieces{cid, Size, First, Hashes} (≤ MaxHashesPerFrame hashes a frame, as many frames as Count needs)
//	                                 ◄───── FIN
//
//	RangeRequest{cid, Offset, Length} ────►
//	                                 ◄───── Queued{Position, Slots} (while waiting for an upload slot;
//	                                        again when the position changes and every QueueRefresh)
//	                                 ◄───── RangeReply{Offset, Length}, then exactly Length raw bytes, FIN
//	                               or ◄──── Error{not found | bad request | full | rate limited | shutting down}
//
// The downloader closes its write side after the request and reads the reply;
// it may stop the stream (STOP_SENDING) once it has what it needs, and the
// holder then frees the slot.
//
// # Pipeline
//
// Each source has one worker goroutine reading its streams into piece
// buffers and hashing each piece as it arrives (internal/piecehash), one
// storer goroutine batching them, and two writers storing runs of up to 8
// verified pieces with one vectored write each, so reading never waits for
// the disk and the disk sees few large writes; the
// next range is asked for while the last pieces of the current one arrive.
// At most 16 pieces (4 MiB, outside the Go heap on Linux) and two ranges are
// in flight per source: memory does not grow with the file.
//
// # Trust
//
// Nothing a holder sends is trusted. The piece-hash list must hash to the
// content ID (proto.VerifyPieces); each piece must hash to its entry before it
// is written. A holder that sends a bad list or a bad piece is dropped for the
// rest of the download; one that stalls, truncates a range or loses its
// connection is retried a few times. Names from search hits must be plain file
// names (no path, not hidden).
//
// # Files on disk
//
// A download writes into Dir/.<name>.<cid prefix>.strata-part (hidden and
// with shares.PartSuffix, so no scan shares it), and keeps its state in
// StateDir/partial/<cid>.state: name, size, piece hashes and which pieces are
// on disk. The state is replaced atomically and only after the part file was
// fsynced, so it never claims bytes that are not on disk. On resume every
// piece already in the part file is hashed again and kept only if it matches.
// Verified pieces are written with O_DIRECT where the file system allows
// (Linux), which skips the page-cache copy and the kernel's writeback,
// submitted through the kernel's AIO so that a writer waits for the disk
// parked in the netpoller instead of blocking a thread that holds one of
// the runtime's Ps (blocking pwritev where AIO is refused); elsewhere
// through the page cache, with writeback started range by range so the
// final fsync is short.
//
// A finished file is fsynced, linked under its final name (never replacing
// another file: "name (1).ext" and so on), the folder is fsynced, and only
// then the state is removed and OnComplete called: the final name never shows
// a partial or wrong file.
package transfer
