package app

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"

	"github.com/vexil-flags/vexil/domain"
)

// TokenPrefix starts every management API token, so secret scanners can recognise leaked ones.
const TokenPrefix = "vxl_"

// TriggerSecretPrefix starts every webhook trigger secret, so secret scanners recognise leaked ones.
const TriggerSecretPrefix = "vxt_"

// NewTokenSecret returns a fresh API token secret and the hash that is stored instead of it.
func NewTokenSecret() (secret, hash string) {
	return newSecret(TokenPrefix)
}

// NewTriggerSecret returns a fresh webhook secret and the hash that is stored instead of it.
func NewTriggerSecret() (secret, hash string) {
	return newSecret(TriggerSecretPrefix)
}

func newSecret(prefix string) (secret, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("app: crypto/rand failed: " + err.Error()) // the OS has no entropy: nothing is safe
	}
	secret = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashToken(secret)
}

// HashToken is the stored form of a token (or trigger) secret.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewID returns a random identifier for tokens, salts, seeds and SDK keys.
func NewID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("app: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// NewSDKKey returns a fresh SDK key of kind client or server.
func NewSDKKey(kind string) string {
	return kind + "-" + NewID(16)
}

// newDeliveryID returns the requested id or a fresh UUIDv7 (time-ordered, so lists by id are in
// creation order).
func newDeliveryID(requested string) (string, error) {
	if requested != "" {
		if !domain.ValidKey(requested) {
			return "", invalidKey("id")
		}
		return requested, nil
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("app: new id: %w", err)
	}
	return id.String(), nil
}
