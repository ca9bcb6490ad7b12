// Package identity keeps a node's Ed25519 key, derives its peer ID, and makes
// the TLS 1.3 configuration that binds every QUIC connection to that key:
// each end presents a self-signed certificate for its key, and each end
// derives the other's peer ID from the certificate it was shown.
package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-p2p/strata/internal/atomicfile"
	"github.com/strata-p2p/strata/proto"
)

// KeyFile is the name of the key file inside a node's state directory.
const KeyFile = "identity.key"

// Identity is a node's key pair and the certificate made from it.
type Identity struct {
	priv ed25519.PrivateKey
	id   proto.PeerID
	cert tls.Certificate
}

// PeerIDOf derives the peer ID of an Ed25519 public key.
func PeerIDOf(pub ed25519.PublicKey) proto.PeerID {
	sum := sha256.Sum256(pub)
	var id proto.PeerID
	copy(id[:], sum[:])
	return id
}

// Generate makes a fresh identity (for tests and new nodes).
func Generate() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	return fromKey(priv)
}

func fromKey(priv ed25519.PrivateKey) (*Identity, error) {
	id := &Identity{priv: priv, id: PeerIDOf(priv.Public().(ed25519.PublicKey))}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: id.id.String()},
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, fmt.Errorf("make certificate: %w", err)
	}
	id.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	return id, nil
}

// PeerID is this node's peer ID.
func (id *Identity) PeerID() proto.PeerID { return id.id }

// Certificate is the TLS certificate bound to the key.
func (id *Identity) Certificate() tls.Certificate { return id.cert }

// Sign signs msg with the node key.
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.priv, msg) }

// DeriveKey returns 32 bytes derived from the node key for purpose, stable
// across restarts (e.g. QUIC's stateless reset key).
func (id *Identity) DeriveKey(purpose string) [32]byte {
	m := hmac.New(sha256.New, id.priv.Seed())
	m.Write([]byte("strata derive " + purpose))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// LoadOrCreate loads the key in dir/identity.key, or creates it (mode 0600,
// written atomically) when the file does not exist. A key file that others
// can read, or that does not hold an Ed25519 key, is refused with an error
// that says what to do: it is never silently replaced, since that would
// change the node's peer ID.
func LoadOrCreate(dir string) (*Identity, bool, error) {
	path := filepath.Join(dir, KeyFile)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		id, err := Generate()
		if err != nil {
			return nil, false, err
		}
		if err := id.save(dir, path); err != nil {
			return nil, false, err
		}
		return id, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("identity key %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("identity key %s has mode %04o: other users can read it; run `chmod 600 %s`", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("read identity key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, false, corrupt(path, "no PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, false, corrupt(path, err.Error())
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, false, corrupt(path, fmt.Sprintf("key is %T, not Ed25519", k))
	}
	id, err := fromKey(priv)
	return id, false, err
}

func corrupt(path, why string) error {
	return fmt.Errorf("identity key %s is corrupt (%s); restore it from a backup, or move it away to start with a new peer ID", path, why)
}

func (id *Identity) save(dir, path string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(id.priv)
	if err != nil {
		return err
	}
	err = atomicfile.Write(path, 0o600, func(w io.Writer) error {
		return pem.Encode(w, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	})
	if err != nil {
		return fmt.Errorf("write identity key: %w", err)
	}
	return nil
}

// MismatchError is returned when the peer presents a valid certificate for a
// different peer ID than the dialer expected.
type MismatchError struct {
	Expected, Got proto.PeerID
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("peer is %s, not the expected %s", e.Got, e.Expected)
}

// PeerIDFromCerts parses a peer's raw certificate chain and returns its
// peer ID (see PeerIDOfChain).
func PeerIDFromCerts(raw [][]byte) (proto.PeerID, error) {
	if len(raw) != 1 {
		return proto.PeerID{}, fmt.Errorf("peer sent %d certificates, want exactly 1", len(raw))
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return proto.PeerID{}, fmt.Errorf("peer certificate: %w", err)
	}
	return PeerIDOfChain([]*x509.Certificate{cert})
}

// PeerIDOfChain checks that a TLS peer's chain is exactly one certificate
// with an Ed25519 key and returns that key's peer ID.
//
// It does not check the certificate's self-signature, and need not: what
// binds a connection to a peer ID is that the peer holds the key, and the
// TLS 1.3 handshake proves that (CertificateVerify is the peer's signature
// over the handshake transcript, certificate included, checked by crypto/tls
// against this certificate's key; the handshake fails without it). A
// self-signature only shows that somebody with the key once signed these
// bytes; checking it cost one more Ed25519 verification per handshake side.
func PeerIDOfChain(certs []*x509.Certificate) (proto.PeerID, error) {
	if len(certs) != 1 {
		return proto.PeerID{}, fmt.Errorf("peer sent %d certificates, want exactly 1", len(certs))
	}
	pub, ok := certs[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return proto.PeerID{}, fmt.Errorf("peer certificate key is %T, want Ed25519", certs[0].PublicKey)
	}
	return PeerIDOf(pub), nil
}

// TLSConfig returns a TLS 1.3 configuration for QUIC with ALPN proto.ALPN
// that presents this identity and requires the other end's. When expect is
// non-zero the handshake fails with a *MismatchError (reported through
// onMismatch, since the TLS stack wraps errors) unless the peer is expect.
func (id *Identity) TLSConfig(expect proto.PeerID, onMismatch func(*MismatchError)) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{id.cert},
		NextProtos:         []string{proto.ALPN},
		ClientAuth:         tls.RequireAnyClientCert,
		InsecureSkipVerify: true, // verification is by peer ID, below
		ServerName:         "strata",
		// crypto/tls has parsed the chain already; VerifyConnection reuses it.
		VerifyConnection: func(cs tls.ConnectionState) error {
			got, err := PeerIDOfChain(cs.PeerCertificates)
			if err != nil {
				return err
			}
			if !expect.IsZero() && got != expect {
				e := &MismatchError{Expected: expect, Got: got}
				if onMismatch != nil {
					onMismatch(e)
				}
				return e
			}
			return nil
		},
	}
}

var _ crypto.Signer = ed25519.PrivateKey(nil)
