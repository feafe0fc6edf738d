package push

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// A notification's tag collapses pushes of the same conversation into one
// on the device. Each service spells the key its own way; FCM relays to
// both, so the spellings live here, beside the message they come from.

// MaxCollapseID is APNs' limit on apns-collapse-id.
const MaxCollapseID = 64

// Topic turns a tag into a Web Push Topic header (RFC 8030 §5.4: at most 32
// characters of the base64url alphabet). A tag that already is one is used
// as is; any other becomes the first 32 characters of base64url(SHA-256).
func Topic(tag string) string {
	if tag == "" {
		return ""
	}
	if len(tag) <= 32 && isBase64URL(tag) {
		return tag
	}
	h := sha256.Sum256([]byte(tag))
	return base64.RawURLEncoding.EncodeToString(h[:])[:32]
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// CollapseID turns a tag into an apns-collapse-id: the tag itself when it
// fits in MaxCollapseID bytes, else the hex SHA-256 of it (exactly 64).
func CollapseID(tag string) string {
	if len(tag) <= MaxCollapseID {
		return tag
	}
	h := sha256.Sum256([]byte(tag))
	return hex.EncodeToString(h[:])
}
