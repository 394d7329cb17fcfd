//go:build !go1.22

package main

import (
	"net/http"
	"strings"
)

// Before Go 1.22: "/" is a catch-all, so check for the exact root and fall
// back to http.NotFound (the same 404 the mux gives) for everything else.
func registerRoot(mux *http.ServeMux) {
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		rootText(w, r)
	})
}

func registerUsers(mux *http.ServeMux) {
	mux.HandleFunc("/users/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/users/")
		if id == "" || strings.Contains(id, "/") {
			http.NotFound(w, r)
			return
		}
		userHandler(w, r, id)
	})
}
