package proto

// Protocol versions. A connection uses the highest version both ends support;
// the hello carries each end's range.
//
// History:
//
//	1 — first version: hello, error, ping, bootstrap join/register, attach,
//	    share add/remove, query/hits, peer lists.
//	2 — reachability in the hello and in hits (with Via: the holder's
//	    supernode and a ticket), topology reports, the promotion messages
//	    (check-in, probes, move), the reachability messages (reach, connect,
//	    relay), Attach.Others and LeafState, RegisterReply.Addrs. Fields were
//	    added to messages of version 1, whose field lists are fixed, so
//	    version 2 does not speak version 1: the ALPN changed with it, and a
//	    version-1 node is refused in the TLS handshake ("no application
//	    protocol") instead of failing on a frame it cannot decode.
const (
	MinVersion uint16 = 2
	MaxVersion uint16 = 2
)

// ALPN is the TLS application protocol every Strata QUIC connection
// negotiates; it names the protocol version.
const ALPN = "strata/2"

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
