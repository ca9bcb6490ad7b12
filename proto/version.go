package proto

// Protocol versions. A connection uses the highest version both ends support;
// the hello carries each end's range.
//
// History:
//
//	1 — first version: hello, error, ping, bootstrap join/register, attach,
//	    share add/remove, query/hits, peer lists.
const (
	MinVersion uint16 = 1
	MaxVersion uint16 = 1
)

// ALPN is the TLS application protocol every Strata QUIC connection negotiates.
const ALPN = "strata/1"

// NegotiateVersion returns the highest version in both ranges, or false when
// they do not overlap.
func NegotiateVersion(min1, max1, min2, max2 uint16) (uint16, bool) {
	hi := min(max1, max2)
	lo := max(min1, min2)
	if hi < lo || hi == 0 {
		return 0, false
	}
	return hi, true
}
