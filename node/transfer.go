package node

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/transfer"
	"github.com/strata-p2p/strata/proto"
	"github.com/strata-p2p/strata/supernode"
)

// initTransfers makes the uploader (serving the node's shares) and the
// download manager (fetching into the downloads folder, which is shared).
func (n *Node) initTransfers() error {
	uc := transfer.DefaultUploaderConfig()
	if n.cfg.UploadSlots > 0 {
		uc.Slots = n.cfg.UploadSlots
	}
	uc.MaxRate = n.cfg.MaxUploadRate
	uc.Logger = n.log.Named("upload")
	n.up = transfer.NewUploader(uc, n.lib)
	var err error
	n.dl, err = transfer.NewManager(transfer.ManagerConfig{
		Dir: n.cfg.Downloads, StateDir: n.cfg.StateDir, Self: n.PeerID(),
		Find: n.findSources, Dial: n.connectPeer, PathOf: n.sessionPath, Have: n.have, OnComplete: n.downloaded,
		Logger: n.log.Named("download"),
	})
	return err
}

// findSources asks the overlay who holds cid. A download resumed at start
// can ask before the node has attached: it waits for that (a few seconds).
func (n *Node) findSources(ctx context.Context, cid proto.ContentID) ([]proto.Hit, error) {
	for i := 0; i < 50 && ctx.Err() == nil; i++ {
		n.mu.Lock()
		ready := len(n.atts) > 0 || n.sn != nil
		n.mu.Unlock()
		if ready {
			break
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	var hits []proto.Hit
	err := n.Search(ctx, "cid:"+cid.String(), 50, 2*time.Second, func(h proto.Hit) bool {
		if h.Entry.ContentID == cid && h.Holder.ID != n.PeerID() {
			n.rememberVia(h)
			hits = append(hits, h)
		}
		return true
	})
	return hits, err
}

func (n *Node) have(cid proto.ContentID) (string, bool) {
	path, _, _, ok := n.lib.Lookup(cid)
	return path, ok
}

// downloaded shares a finished download at once.
func (n *Node) downloaded(path string, cid proto.ContentID, pieces []proto.PieceHash) {
	n.scanMu.Lock()
	diff, err := n.lib.AddFile(context.Background(), path, pieces)
	if err != nil {
		n.scanMu.Unlock()
		n.log.Warn("cannot share a finished download", zap.String("path", path), zap.Error(err))
		return
	}
	n.publishLocked(diff)
	n.scanMu.Unlock()
	n.log.Info("download finished and shared", zap.String("path", path), zap.Stringer("content_id", cid))
}

// Downloads is the download manager.
func (n *Node) Downloads() *transfer.Manager { return n.dl }

// Uploads is the uploader.
func (n *Node) Uploads() *transfer.Uploader { return n.up }

var _ = supernode.SelfHandle
