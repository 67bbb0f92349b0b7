package alerts

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
)

// Sealer encrypts operator rules' webhook URLs at rest (AES-256-GCM): a webhook URL is a secret
// (anyone holding it can post to the channel), and the database is not where secrets live in
// the clear. The key comes from HELIX_ALERT_WEBHOOK_KEY (a secret reference in AWS).
type Sealer struct{ aead cipher.AEAD }

// NewSealer reads a base64 key of 32 bytes.
func NewSealer(b64 string) (*Sealer, error) {
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) != 32 {
		return nil, errors.New("HELIX_ALERT_WEBHOOK_KEY must be 32 random bytes in base64 (openssl rand -base64 32)")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plain (a random nonce, then the ciphertext).
func (s *Sealer) Seal(plain string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, []byte(plain), []byte("helix alert webhook v1")), nil
}

// Open decrypts what Seal made.
func (s *Sealer) Open(sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed webhook too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte("helix alert webhook v1"))
	if err != nil {
		return "", errors.New("sealed webhook does not open with HELIX_ALERT_WEBHOOK_KEY")
	}
	return string(plain), nil
}
