// Package web is Herald's browser side: the client library (herald.js and
// its type declarations), the service worker (herald-sw.js) and the demo
// page, embedded into the binary. The server serves them; nothing here runs
// in Go.
package web

import (
	"embed"
	"io/fs"
)

//go:embed herald.js herald-util.js herald-storage.js herald-toast.js herald.d.ts herald-sw.js index.html demo.js favicon.svg manifest.webmanifest icon-192.png icon-512.png
var assets embed.FS

// Assets returns the browser files, at the root of the returned FS.
func Assets() fs.FS { return assets }
