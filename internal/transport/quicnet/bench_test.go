package quicnet

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/strata-p2p/strata/internal/identity"
	"github.com/strata-p2p/strata/internal/transport"
	"github.com/strata-p2p/strata/proto"
)

const streamBytes = 1 << 30 // 1 GiB, as the issue names

// sink reads a stream to EOF and reports the byte count.
func sink(r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func source(w io.Writer, n int64) error {
	buf := make([]byte, 256<<10)
	for n > 0 {
		k, err := w.Write(buf[:min(int64(len(buf)), n)])
		if err != nil {
			return err
		}
		n -= int64(k)
	}
	return nil
}

func benchIDs(b *testing.B) (*identity.Identity, *identity.Identity) {
	a, err := identity.Generate()
	if err != nil {
		b.Fatal(err)
	}
	c, err := identity.Generate()
	if err != nil {
		b.Fatal(err)
	}
	return a, c
}

// BenchmarkStreamThroughput copies 1 GiB over one stream on loopback through
// Strata's transport and, for comparison, through plain quic-go with its
// default configuration and the same certificates.
func BenchmarkStreamThroughput(b *testing.B) {
	b.Run("impl=strata", func(b *testing.B) {
		ida, idb := benchIDs(b)
		srv, err := Listen("127.0.0.1:0", idb, Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		cli, err := Listen("127.0.0.1:0", ida, Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer cli.Close()
		got := make(chan int64)
		go func() {
			for {
				c, err := srv.Accept(context.Background())
				if err != nil {
					return
				}
				go func(c transport.Conn) {
					for {
						s, err := c.AcceptStream(context.Background())
						if err != nil {
							return
						}
						n, _ := sink(s)
						got <- n
					}
				}(c)
			}
		}()
		c, err := cli.Dial(context.Background(), srv.Addr().String(), srv.LocalPeer())
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(streamBytes)
		for b.Loop() {
			s, err := c.OpenStream(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if err := source(s, streamBytes); err != nil {
				b.Fatal(err)
			}
			_ = s.Close()
			if n := <-got; n != streamBytes {
				b.Fatalf("received %d bytes", n)
			}
		}
		_ = c.CloseWithError(proto.CodeOK, "")
	})
	b.Run("impl=quic-go-default", func(b *testing.B) {
		ida, idb := benchIDs(b)
		ln, err := quic.ListenAddr("127.0.0.1:0", plainTLS(idb), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		got := make(chan int64)
		go func() {
			for {
				c, err := ln.Accept(context.Background())
				if err != nil {
					return
				}
				go func(c *quic.Conn) {
					for {
						s, err := c.AcceptStream(context.Background())
						if err != nil {
							return
						}
						n, _ := sink(s)
						got <- n
					}
				}(c)
			}
		}()
		c, err := quic.DialAddr(context.Background(), ln.Addr().String(), plainTLS(ida), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseWithError(0, "")
		b.SetBytes(streamBytes)
		for b.Loop() {
			s, err := c.OpenStreamSync(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if err := source(s, streamBytes); err != nil {
				b.Fatal(err)
			}
			_ = s.Close()
			if n := <-got; n != streamBytes {
				b.Fatalf("received %d bytes", n)
			}
		}
	})
}

// plainTLS is a minimal TLS 1.3 config with the same Ed25519 certificate and
// no peer verification: what a plain quic-go user would write.
func plainTLS(id *identity.Identity) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{id.Certificate()}, NextProtos: []string{proto.ALPN},
		InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
}

// BenchmarkHandshake measures dial + handshake + peer ID verification on
// both ends with Strata's transport, beside plain quic-go's handshake
// (server certificate only, nothing verified).
func BenchmarkHandshake(b *testing.B) {
	b.Run("impl=strata", func(b *testing.B) {
		ida, idb := benchIDs(b)
		srv, err := Listen("127.0.0.1:0", idb, Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		cli, err := Listen("127.0.0.1:0", ida, Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer cli.Close()
		go func() {
			for {
				if _, err := srv.Accept(context.Background()); err != nil {
					return
				}
			}
		}()
		for b.Loop() {
			c, err := cli.Dial(context.Background(), srv.Addr().String(), srv.LocalPeer())
			if err != nil {
				b.Fatal(err)
			}
			_ = c.CloseWithError(proto.CodeOK, "")
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	})
	b.Run("impl=quic-go-default", func(b *testing.B) {
		ida, idb := benchIDs(b)
		ln, err := quic.ListenAddr("127.0.0.1:0", plainTLS(idb), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				if _, err := ln.Accept(context.Background()); err != nil {
					return
				}
			}
		}()
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		tr := &quic.Transport{Conn: udp}
		defer tr.Close()
		for b.Loop() {
			c, err := tr.Dial(context.Background(), ln.Addr(), plainTLS(ida), nil)
			if err != nil {
				b.Fatal(err)
			}
			_ = c.CloseWithError(0, "")
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	})
}
