// Package index is a supernode's keyword index over the files its leaves
// share, and the query language searches are written in.
//
// # Queries
//
// ParseQuery turns search text into a Query. Every word must match a whole
// token of a file's name (extension included) or of its artist, title or
// album tags; matching ignores case and accents. Filters after Napster's
// BITRATE/FREQ comparisons narrow the result: size>10MB, bitrate>=128,
// freq=44100, duration<3m20s, ext:mp3, type:audio. Query.String gives the
// canonical text, which ParseQuery parses back to an equal Query: that text
// is what supernodes forward. Query.Match tests a single FileEntry; the index
// and Match agree exactly (a property test holds them to it).
//
// Choices the package makes:
//
//   - Tokens are whole words: "beat" does not find "Beatles". Prefix or
//     substring search would need a different index (n-grams) and would make
//     common short queries expensive; exact tokens keep posting lists short.
//   - Normalisation is NFKD (canonical and compatibility decomposition, so
//     ligatures, full-width letters and superscripts fold too), combining
//     marks dropped, lowercase, and a few letters spelt out (ß → ss, æ → ae,
//     ø → o, ł → l, þ → th). Hangul syllables stay composed. Scripts written
//     without spaces (Chinese, Japanese) are not segmented: a run of such
//     letters is one token.
//   - Tokens shorter than MinWordLen (2) bytes are dropped from names and
//     queries alike: single ASCII letters and digits ("a", the "1" of
//     "Vol 1"). Tokens are cut at 255 bytes.
//   - A query needs at least one word; filters alone would make a supernode
//     scan everything. Words are deduplicated and sorted in the canonical
//     form, which is held to MaxQueryLen as well.
//   - An unknown key before a comparison ("bitrat>128") is an error; before a
//     colon ("Re:Zero", "Star Wars: Episode IV") the text is taken as words.
//     Text in double quotes is always words.
//
// # The index
//
// Index keeps, per file, a 64-byte record (content ID, size, owner, text
// offset and lengths, 16-bit bitrate/sample rate/duration with an exact side
// table for the rare values that do not fit, media type) in fixed pages, and
// the file's name and tags back to back in a paged byte arena. Each term has
// a posting list that is a sorted []uint32 of doc IDs while the term is rare
// and a bitmap over the doc-ID space once it is in more than 1/128 of the
// files. A search intersects the lists from the rarest (merging two lists of
// similar length without branches, galloping otherwise, testing bits against
// bitmaps, ANDing words when all are bitmaps), applies the filters to the
// survivors, and stops at the caller's limit.
//
// Removing a file re-tokenises its stored text to find its terms; terms no
// file holds any more are deleted, and doc IDs are reused. RemoveOwner
// batches the work for a departing leaf so that each affected posting list
// is rewritten once.
//
// The holders of one content ID (a download's "who has this file?") are
// found through a table of per-content-ID chains (bycid.go), not a scan.
//
// At one million synthetic files (package corpus) on a 2-core machine the
// index holds about 141 bytes per file beyond the text (16 of them for the
// content-ID chains), builds at about 300,000 files a second, finds a
// content ID's holders in about 3 µs (a scan of the records took 4.7 ms), answers two-word queries capped at 100 results at
// about 70,000 a second on one core with a p99 near 60 µs, and drops a leaf
// of 5,000 files in about 16 ms; see bench/bleve for the comparison with
// bleve.
//
// An Index is not safe for concurrent use; a Query is.
package index
