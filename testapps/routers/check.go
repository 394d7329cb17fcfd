package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// A request of the -check mode and what every router must answer. route is the X-Route
// header each router's handler sets ("" where the router itself answers: 404, 405).
type checkCase struct {
	method, path string
	status       int
	route        map[string]string
}

// routes gives the same template for gin and httprouter (":id", "*filepath"), for chi and
// gorilla ("{id}"), and echo's, except where one differs.
func routes(ginLike, chiLike, echo string) map[string]string {
	return map[string]string{"gin": ginLike, "httprouter": ginLike, "chi": chiLike, "gorilla": chiLike, "echo": echo}
}

var checkCases = []checkCase{
	{"GET", "/health", 200, routes("/health", "/health", "/health")},
	{"GET", "/users/42", 200, routes("/users/:id", "/users/{id}", "/users/:id")},
	{"GET", "/users/missing", 404, routes("/users/:id", "/users/{id}", "/users/:id")},
	{"GET", "/users/42/orders/7", 200, routes("/users/:id/orders/:order", "/users/{id}/orders/{order}", "/users/:id/orders/:order")},
	{"GET", "/files/a/b.txt", 200, map[string]string{
		"gin": "/files/*filepath", "httprouter": "/files/*filepath", "chi": "/files/*", "gorilla": "/files/", "echo": "/files/*"}},
	{"GET", "/api/v1/items/9", 200, routes("/api/v1/items/:id", "/api/v1/items/{id}", "/api/v1/items/:id")},
	{"POST", "/api/v1/items", 201, routes("/api/v1/items", "/api/v1/items", "/api/v1/items")},
	{"GET", "/fail", 500, routes("/fail", "/fail", "/fail")},
	{"GET", "/nope", 404, routes("", "", "")},
	{"GET", "/api/nope", 404, routes("", "", "")},
	{"DELETE", "/health", 405, routes("", "", "")},
	{"POST", "/users/42", 405, routes("", "", "")},
	{"GET", "/api/v1/items", 405, routes("", "", "")},
}

// runChecks sends every check request to every router in addrs; true when all answered as
// expected.
func runChecks(addrs map[string]string) bool {
	client := &http.Client{Timeout: 10 * time.Second}
	good, bad := 0, 0
	for _, rt := range routers {
		addr, ok := addrs[rt.name]
		if !ok {
			continue
		}
		for _, c := range checkCases {
			status, route, err := checkRequest(client, c.method, "http://"+addr+c.path)
			switch {
			case err != nil:
				fmt.Printf("%s %s %s: %v\n", rt.name, c.method, c.path, err)
				bad++
			case status != c.status || route != c.route[rt.name]:
				fmt.Printf("%s %s %s: got %d X-Route %q, want %d %q\n",
					rt.name, c.method, c.path, status, route, c.status, c.route[rt.name])
				bad++
			default:
				good++
			}
		}
	}
	fmt.Printf("routers check: %d requests as expected, %d not\n", good, bad)
	return bad == 0
}

func checkRequest(client *http.Client, method, url string) (int, string, error) {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Route"), nil
}
