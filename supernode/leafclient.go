package supernode

import (
	"fmt"

	"github.com/strata-p2p/strata/internal/session"
	"github.com/strata-p2p/strata/proto"
)

// uploadBatch is how many entries a ShareAdd of the initial upload carries:
// small enough that the supernode decodes and indexes one batch while the leaf
// encodes the next, large enough that framing costs nothing (a frame may hold
// up to proto.MaxShareBatch).
const uploadBatch = 125

// AttachAndUpload is the leaf's half of attaching on a fresh stream st: it
// sends Attach and the whole share list in ShareAdd batches without waiting
// for the answer, then reads the AttachReply. The supernode reads the stream
// in order, so the shares are indexed right after it accepts, one round trip
// sooner than waiting for the reply first. A supernode that refuses stops the
// stream (what it read of the shares is dropped unread), so a failed send is
// not an error as long as the reply can still be read. others is how many
// other supernodes answer the leaf now (proto.Attach).
func AttachAndUpload(st *session.Stream, others int, files []proto.FileEntry) (*proto.AttachReply, error) {
	if err := st.Send(&proto.Attach{Files: uint32(len(files)), Others: uint8(min(others, 255))}); err != nil {
		return nil, err
	}
	var sendErr error
	for len(files) > 0 && sendErr == nil {
		k := min(len(files), uploadBatch)
		sendErr = st.Send(&proto.ShareAdd{Entries: files[:k]})
		files = files[k:]
	}
	m, err := st.Recv()
	if err != nil {
		if sendErr != nil {
			return nil, sendErr
		}
		return nil, err
	}
	reply, ok := m.(*proto.AttachReply)
	if !ok {
		return nil, fmt.Errorf("supernode answered %s to Attach", m.Type())
	}
	if reply.Accepted && sendErr != nil {
		return nil, fmt.Errorf("uploading the share list: %w", sendErr)
	}
	return reply, nil
}
