package main

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// httprouterHandler: httprouter with its defaults (405 for another method on a known path).
// It has neither groups nor middleware, and cannot tell a handler which route matched: each
// handler is given the path it was registered with.
func httprouterHandler() http.Handler {
	r := httprouter.New()
	handle := func(method, path string, h func(w http.ResponseWriter, route string, ps httprouter.Params)) {
		r.Handle(method, path, func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
			h(w, path, ps)
		})
	}
	const name = "httprouter"

	handle(http.MethodGet, "/health", func(w http.ResponseWriter, route string, ps httprouter.Params) {
		health(w, name, route)
	})
	handle(http.MethodGet, "/users/:id", func(w http.ResponseWriter, route string, ps httprouter.Params) {
		user(w, name, route, ps.ByName("id"))
	})
	handle(http.MethodGet, "/users/:id/orders/:order", func(w http.ResponseWriter, route string, ps httprouter.Params) {
		order(w, name, route, ps.ByName("id"), ps.ByName("order"))
	})
	handle(http.MethodGet, "/files/*filepath", func(w http.ResponseWriter, route string, ps httprouter.Params) {
		file(w, name, route, ps.ByName("filepath"))
	})
	handle(http.MethodGet, "/api/v1/items/:id", func(w http.ResponseWriter, route string, ps httprouter.Params) {
		getItem(w, name, route, ps.ByName("id"))
	})
	handle(http.MethodPost, "/api/v1/items", func(w http.ResponseWriter, route string, ps httprouter.Params) {
		createItem(w, name, route)
	})
	handle(http.MethodGet, "/fail", func(w http.ResponseWriter, route string, ps httprouter.Params) {
		fail(w, name, route)
	})
	return r
}
