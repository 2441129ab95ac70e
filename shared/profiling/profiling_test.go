package profiling_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wahook/wahook/shared/profiling"
)

func TestMount(t *testing.T) {
	t.Parallel()
	app := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for _, tc := range []struct {
		name    string
		enabled bool
		path    string
		want    int
	}{
		{"off: profiles are the app's", false, "/debug/pprof/heap", http.StatusTeapot},
		{"on: profiles served", true, "/debug/pprof/heap", http.StatusOK},
		{"on: the rest is the app's", true, "/webhook", http.StatusTeapot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			profiling.Mount(app, tc.enabled).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != tc.want {
				t.Errorf("GET %s: %d, want %d", tc.path, rec.Code, tc.want)
			}
		})
	}
}
