package main

import (
	"net/http"

	"github.com/go-chi/chi"
	"github.com/go-chi/chi/middleware"
)

// chiHandler: chi with middleware.RequestID; /api/v1 is a sub-router mounted at /api that
// holds a Route("/v1", ...), so a request there goes through three routing contexts' worth
// of patterns ("/api/*", "/v1/*", "/items/{id}").
func chiHandler() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID)

	r.Get("/health", func(w http.ResponseWriter, req *http.Request) {
		health(w, "chi", chiRoute(req))
	})
	r.Get("/users/{id}", func(w http.ResponseWriter, req *http.Request) {
		user(w, "chi", chiRoute(req), chi.URLParam(req, "id"))
	})
	r.Get("/users/{id}/orders/{order}", func(w http.ResponseWriter, req *http.Request) {
		order(w, "chi", chiRoute(req), chi.URLParam(req, "id"), chi.URLParam(req, "order"))
	})
	r.Get("/files/*", func(w http.ResponseWriter, req *http.Request) {
		file(w, "chi", chiRoute(req), chi.URLParam(req, "*"))
	})
	api := chi.NewRouter()
	api.Route("/v1", func(v1 chi.Router) {
		v1.Get("/items/{id}", func(w http.ResponseWriter, req *http.Request) {
			getItem(w, "chi", chiRoute(req), chi.URLParam(req, "id"))
		})
		v1.Post("/items", func(w http.ResponseWriter, req *http.Request) {
			createItem(w, "chi", chiRoute(req))
		})
	})
	r.Mount("/api", api)
	r.Get("/fail", func(w http.ResponseWriter, req *http.Request) {
		fail(w, "chi", chiRoute(req))
	})
	return r
}

func chiRoute(req *http.Request) string {
	return chi.RouteContext(req.Context()).RoutePattern()
}
