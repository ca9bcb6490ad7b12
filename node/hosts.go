package node

import (
	"context"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/strata-p2p/strata/internal/hostcache"
	"github.com/strata-p2p/strata/supernode"
)

// hostsSaveEvery is how often a changed host cache is written to disk (and
// it is written once more on shutdown), so a node killed with -9 still
// finds its supernodes again.
const hostsSaveEvery = 5 * time.Second

// openHostCache loads <StateDir>/hostcache. A file that cannot be used is
// reported and ignored: the node starts with an empty cache.
func openHostCache(cfg Config) *hostcache.Cache {
	c := hostcache.New(hostcache.Config{Path: filepath.Join(cfg.StateDir, hostcache.FileName)})
	if err := c.Load(); err != nil {
		cfg.Logger.Warn("host cache not used", zap.Error(err))
	} else if c.Len() > 0 {
		cfg.Logger.Info("host cache loaded", zap.Int("supernodes", c.Len()))
	}
	return c
}

func (n *Node) saveHostsLoop(ctx context.Context) {
	t := time.NewTicker(hostsSaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.hosts.Save(); err != nil {
				n.log.Warn("host cache not saved; will retry", zap.Error(err))
			}
		}
	}
}

// refreshHosts is a supernode's heartbeat upkeep of the host cache: its
// mesh neighbours are live supernodes worth remembering; and while no
// bootstrap server answers, the cached supernodes are offered to the mesh
// as candidates, so lost neighbours are replaced without a bootstrap.
func (n *Node) refreshHosts(rt *supernode.Runtime, bootstrapsDown bool) {
	now := time.Now()
	rt.With(func(c *supernode.Core) {
		n.hosts.Add(now, c.Neighbours()...)
		if bootstrapsDown {
			c.Learn(now, n.hosts.Infos())
		}
	})
}
