//go:build !linux

package netns

import (
	"context"
	"errors"
	"net"
)

// dialIn fails: network namespaces are Linux's (New skips tests elsewhere,
// since ip is missing).
func dialIn(ctx context.Context, name, network, addr string) (net.Conn, error) {
	return nil, errors.New("netns: network namespaces need Linux")
}
