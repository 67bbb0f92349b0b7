package auditlog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// checkpointOrigin is the first line of every checkpoint: which log it speaks for.
const checkpointOrigin = "helix audit log"

// Checkpoint is a state of the tree: its size and root hash, at a time. Signed, it is the
// outside witness: posted to #helix-hash-chain every minute, it lets anyone holding the public
// key check later that the log only grew from it (a consistency proof), whatever the database
// says then.
type Checkpoint struct {
	Size int64
	Root tlog.Hash
	At   time.Time
}

// Text is the checkpoint as it is signed:
//
//	helix audit log
//	<size>
//	<root hash, base64>
//	<time, RFC 3339 UTC>
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n%s\n", checkpointOrigin, c.Size, c.Root, c.At.UTC().Format(time.RFC3339))
}

// SignedCheckpoint is a checkpoint as stored: its size and root, and the signed note.
type SignedCheckpoint struct {
	ID     int64
	Size   int64
	Root   tlog.Hash
	Signed string
	At     time.Time
}

// ParseCheckpoint reads a checkpoint's text.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 5 || lines[0] != checkpointOrigin || lines[4] != "" {
		return Checkpoint{}, errors.New("audit checkpoint: not a helix audit log checkpoint")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return Checkpoint{}, errors.New("audit checkpoint: bad tree size")
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return Checkpoint{}, errors.New("audit checkpoint: bad root hash")
	}
	at, err := time.Parse(time.RFC3339, lines[3])
	if err != nil {
		return Checkpoint{}, errors.New("audit checkpoint: bad time")
	}
	return Checkpoint{Size: size, Root: root, At: at}, nil
}

// Sign signs the checkpoint (an Ed25519 signed note, golang.org/x/mod/sumdb/note).
func (c Checkpoint) Sign(s note.Signer) (string, error) {
	msg, err := note.Sign(&note.Note{Text: c.Text()}, s)
	if err != nil {
		return "", fmt.Errorf("audit checkpoint: sign: %w", err)
	}
	return string(msg), nil
}

// OpenCheckpoint verifies a signed checkpoint with the verifier (public) key and reads it.
func OpenCheckpoint(signed string, v note.Verifier) (Checkpoint, error) {
	return OpenCheckpointWith(signed, note.VerifierList(v))
}

// OpenCheckpointWith verifies a signed checkpoint with whichever of the known verifier keys
// signed it (each signature names its key) and reads it.
func OpenCheckpointWith(signed string, keys note.Verifiers) (Checkpoint, error) {
	n, err := note.Open([]byte(signed), keys)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	return ParseCheckpoint(n.Text)
}

// NewSigner reads a signing key (a note private key, "PRIVATE+KEY+<name>+<hash>+<key>", as
// `make audit-key` prints it). The error never repeats the key.
func NewSigner(skey string) (note.Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, errors.New("audit signing key: not a note private key (PRIVATE+KEY+name+hash+key; make audit-key makes one)")
	}
	return s, nil
}

// NewVerifiers reads a comma-separated list of verifier keys: the current one and those it
// replaced, so that checkpoints signed before a rotation still verify.
func NewVerifiers(list string) (note.Verifiers, error) {
	var vs []note.Verifier
	for _, k := range strings.Split(list, ",") {
		if strings.TrimSpace(k) == "" {
			continue
		}
		v, err := NewVerifier(k)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, errors.New("audit verifier key: none given")
	}
	return note.VerifierList(vs...), nil
}

// NewVerifier reads a verifier (public) key, "<name>+<hash>+<key>".
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("audit verifier key: %w", err)
	}
	return v, nil
}
