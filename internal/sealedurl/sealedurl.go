// Package sealedurl hands a download URL of a stored archive to the one person who asked for
// it: the asker makes an X25519 key pair for the request, the node agent seals the URL to its
// public key with NaCl's anonymous box, and only the private key, which never leaves the
// asker's process, opens it.
package sealedurl

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/nacl/box"
)

// MaxKeyLength is the longest request a key can be written as (a 32-byte key in standard,
// padded base64 is 44 characters).
const MaxKeyLength = 44

// Grant is what is sealed: the presigned URL, and the PEM bundle of the CA that signs the
// store's certificate (the store's spec.caBundle, which the asker may not be allowed to read).
type Grant struct {
	URL      string `json:"url"`
	CABundle string `json:"caBundle,omitempty"`
}

// Key is a request's key pair. Its private half stays in the process that made it.
type Key struct {
	public, private *[32]byte
}

// NewKey makes a key pair for one request.
func NewKey() (*Key, error) {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Key{public: pub, private: priv}, nil
}

// Public is the public key as a request carries it: standard base64.
func (k *Key) Public() string { return base64.StdEncoding.EncodeToString(k.public[:]) }

// Open opens what Seal sealed to this key.
func (k *Key) Open(sealed string) (Grant, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return Grant{}, fmt.Errorf("the sealed URL is not base64: %w", err)
	}
	plain, ok := box.OpenAnonymous(nil, raw, k.public, k.private)
	if !ok {
		return Grant{}, errors.New("the sealed URL does not open with this request's key")
	}
	var g Grant
	if err := json.Unmarshal(plain, &g); err != nil {
		return Grant{}, fmt.Errorf("the sealed URL: %w", err)
	}
	return g, nil
}

// ParsePublicKey reads a request's public key, saying what is wrong with one that is not.
func ParsePublicKey(s string) (*[32]byte, error) {
	if len(s) > MaxKeyLength {
		return nil, fmt.Errorf("not an X25519 public key: %d characters, where a key is %d (32 bytes, base64)", len(s), MaxKeyLength)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not an X25519 public key: not base64: %w", err)
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("not an X25519 public key: %d bytes, where a key has 32", len(raw))
	}
	var k [32]byte
	copy(k[:], raw)
	var zero [32]byte
	if k == zero {
		return nil, errors.New("not an X25519 public key: all zeros")
	}
	return &k, nil
}

// Seal seals g to the public key pub, for status: base64.
func Seal(pub *[32]byte, g Grant) (string, error) {
	plain, err := json.Marshal(g)
	if err != nil {
		return "", err
	}
	sealed, err := box.SealAnonymous(nil, plain, pub, rand.Reader)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sealed), nil
}

// Ref is how an answer names the request it answers: the request itself when it is no
// longer than a key, else a digest of it, so that an answer to a huge request stays small.
func Ref(request string) string {
	if len(request) <= MaxKeyLength {
		return request
	}
	sum := sha256.Sum256([]byte(request))
	return "sha256:" + hex.EncodeToString(sum[:16])
}
