package notification

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
)

var idEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// DerivedID is an id made from parts: the same parts always give the same
// id, so work done again (a redelivered webhook event, a retried request
// under the same idempotency key) makes the same notification, which the
// broker publishes once and clients drop. Each part is length-prefixed, so
// no two lists of parts collide by concatenation; prefix tells the sources
// apart.
func DerivedID(prefix string, parts ...string) string {
	h := sha256.New()
	for _, s := range parts {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	sum := h.Sum(nil)
	return prefix + idEncoding.EncodeToString(sum[:16])
}
