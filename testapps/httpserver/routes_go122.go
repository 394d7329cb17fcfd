//go:build go1.22

// In GOPATH mode the default GODEBUG settings are Go 1.20's, which include
// httpmuxgo121=1 (the old ServeMux, to which "GET /users/{id}" is a literal
// path). Ask for the Go 1.22 mux explicitly.
//go:debug httpmuxgo121=0

package main

import "net/http"

// Go 1.22 and later: enhanced ServeMux patterns (method + wildcards). "/{$}"
// matches only the root, so other unknown paths get the mux's own 404.
func registerRoot(mux *http.ServeMux) {
	mux.HandleFunc("/{$}", rootText)
}

func registerUsers(mux *http.ServeMux) {
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		userHandler(w, r, r.PathValue("id"))
	})
}
