package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// The answers of the route handlers, shared by every router: each router's handler gets its
// parameters its own way and calls one of these with the route it matched.

func reply(w http.ResponseWriter, status int, router, route, detail string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Route", route)
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s %s %s\n", router, route, detail)
}

func health(w http.ResponseWriter, router, route string) {
	reply(w, http.StatusOK, router, route, "ok")
}

// user answers 404 itself for the id "missing": a matched route whose handler says 404.
func user(w http.ResponseWriter, router, route, id string) {
	if id == "missing" {
		reply(w, http.StatusNotFound, router, route, "no user "+id)
		return
	}
	reply(w, http.StatusOK, router, route, "user "+id)
}

func order(w http.ResponseWriter, router, route, id, order string) {
	reply(w, http.StatusOK, router, route, "user "+id+" order "+order)
}

// file gets the rest of the path after /files/, with or without its leading slash
// depending on the router.
func file(w http.ResponseWriter, router, route, rest string) {
	reply(w, http.StatusOK, router, route, "file "+strings.TrimPrefix(rest, "/"))
}

func getItem(w http.ResponseWriter, router, route, id string) {
	reply(w, http.StatusOK, router, route, "item "+id)
}

func createItem(w http.ResponseWriter, router, route string) {
	reply(w, http.StatusCreated, router, route, "created")
}

func fail(w http.ResponseWriter, router, route string) {
	reply(w, http.StatusInternalServerError, router, route, "failed")
}

// tagKey is the context key of the middleware that give a request a new context.
type tagKey struct{}

// withTag returns r with a new context carrying the router's name, as middleware of real
// services do (request ids, loggers, deadlines): the handler gets another *http.Request
// than the one net/http passed to the router.
func withTag(r *http.Request, router string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), tagKey{}, router))
}

// tagMiddleware is withTag as net/http middleware.
func tagMiddleware(router string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, withTag(r, router))
		})
	}
}
