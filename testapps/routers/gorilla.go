package main

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// gorillaHandler: gorilla/mux with a middleware that gives the request a new context; every
// route names its method, so another method gets the router's 405 (no
// MethodNotAllowedHandler is set: the router's default method-mismatch answer). /files/ is
// a PathPrefix route and /api/v1 a PathPrefix sub-router.
func gorillaHandler() http.Handler {
	r := mux.NewRouter()
	r.Use(tagMiddleware("gorilla"))

	r.HandleFunc("/health", func(w http.ResponseWriter, req *http.Request) {
		health(w, "gorilla", gorillaRoute(req))
	}).Methods(http.MethodGet)
	r.HandleFunc("/users/{id}", func(w http.ResponseWriter, req *http.Request) {
		user(w, "gorilla", gorillaRoute(req), mux.Vars(req)["id"])
	}).Methods(http.MethodGet)
	r.HandleFunc("/users/{id}/orders/{order}", func(w http.ResponseWriter, req *http.Request) {
		vars := mux.Vars(req)
		order(w, "gorilla", gorillaRoute(req), vars["id"], vars["order"])
	}).Methods(http.MethodGet)
	r.PathPrefix("/files/").HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		file(w, "gorilla", gorillaRoute(req), strings.TrimPrefix(req.URL.Path, "/files/"))
	}).Methods(http.MethodGet)
	v1 := r.PathPrefix("/api/v1").Subrouter()
	v1.HandleFunc("/items/{id}", func(w http.ResponseWriter, req *http.Request) {
		getItem(w, "gorilla", gorillaRoute(req), mux.Vars(req)["id"])
	}).Methods(http.MethodGet)
	v1.HandleFunc("/items", func(w http.ResponseWriter, req *http.Request) {
		createItem(w, "gorilla", gorillaRoute(req))
	}).Methods(http.MethodPost)
	r.HandleFunc("/fail", func(w http.ResponseWriter, req *http.Request) {
		fail(w, "gorilla", gorillaRoute(req))
	}).Methods(http.MethodGet)
	return r
}

func gorillaRoute(req *http.Request) string {
	route := mux.CurrentRoute(req)
	if route == nil {
		return ""
	}
	tpl, err := route.GetPathTemplate()
	if err != nil {
		return ""
	}
	return tpl
}
