// Package profiling mounts Go's runtime profiles (net/http/pprof) beside a
// service's own handler, when an operator asks for them with WAHOOK_PPROF. Off by
// default: the profiles reveal internals and a CPU profile costs CPU.
package profiling

import (
	"net/http"
	"net/http/pprof"
	"strings"
)

// Prefix is where the profiles are served.
const Prefix = "/debug/pprof/"

// Mount returns h, with the profiles under Prefix when enabled.
func Mount(h http.Handler, enabled bool) http.Handler {
	if !enabled {
		return h
	}
	mux := http.NewServeMux()
	mux.HandleFunc(Prefix, pprof.Index)
	mux.HandleFunc(Prefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc(Prefix+"profile", pprof.Profile)
	mux.HandleFunc(Prefix+"symbol", pprof.Symbol)
	mux.HandleFunc(Prefix+"trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, Prefix) {
			mux.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
