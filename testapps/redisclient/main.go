// Command redisclient is an HTTP server that talks to Redis through gopkg.in/redis.v5 (go-redis
// v5, the only go-redis Debian packages; it has no context API), the test target for Redis
// client spans. It is built in GOPATH mode against Debian's package in /usr/share/gocode
// (bookworm: 5.2.9).
//
// Flags:
//
//	-listen HOST:PORT   where to serve HTTP (default 127.0.0.1:0, a free port)
//	-addr HOST:PORT     the Redis server (required)
//
// The program connects and pings before it prints, on stdout, its one line
//
//	READY 127.0.0.1:PORT
//
// Routes:
//
//	GET /healthz   200 "ok"
//	GET /script    runs the fixed script of runScript and answers 200 with
//	               {"steps": [step, ...]}, a step per client call made, in order
//	GET /two       two commands (GET, INCR), 200 with {"steps": [...]}, 500 when one failed
//
// SIGTERM or SIGINT shuts it down.
package main

import (
	"flag"
	"log"
	"net/http"
	"strings"

	"gopkg.in/redis.v5"
)

// step is one call of the Redis client the program made.
type step struct {
	// The method called: Client.Set, Client.Get, Client.Incr, Client.HSet, Client.Del,
	// Pipeline.Exec (of a Client.Pipeline) and TxPipeline.Exec (of a Client.TxPipeline:
	// MULTI ... EXEC).
	Call string `json:"call"`
	// The Redis command sent (lower case, as go-redis names it) with its arguments, the
	// command's name included: "set gotrace:key literal-redis-value"; "" for Exec.
	Command string `json:"command"`
	// How many arguments the command has, its name included (SET key value: 3).
	Args int `json:"args"`
	// The error, "" when none; redis.Nil (a missing key) is not one, see Nil.
	Error string `json:"error"`
	// The command answered nil (redis.Nil: GET of a missing key).
	Nil bool `json:"nil,omitempty"`
	// Exec: the queued commands, each as in Command, in order.
	Commands []string `json:"commands,omitempty"`
}

type answer struct {
	Steps []step `json:"steps"`
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("redisclient: ")
	listen := flag.String("listen", "127.0.0.1:0", "serve HTTP on HOST:PORT")
	addr := flag.String("addr", "", "the Redis server's HOST:PORT (required)")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments: %q", flag.Args())
	}
	if *addr == "" {
		log.Fatal("-addr is required")
	}
	client := redis.NewClient(&redis.Options{Addr: *addr})
	if err := client.Ping().Err(); err != nil {
		log.Fatalf("ping %s: %v", *addr, err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", healthz)
	mux.HandleFunc("/script", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, answer{Steps: runScript(client)})
	})
	mux.HandleFunc("/two", func(w http.ResponseWriter, r *http.Request) {
		steps := runTwo(client)
		status := http.StatusOK
		for _, s := range steps {
			if s.Error != "" {
				status = http.StatusInternalServerError
			}
		}
		writeJSON(w, status, answer{Steps: steps})
	})
	serve(*listen, mux)
	client.Close()
}

type recorder struct {
	steps []step
}

// one records a single command's call; words are the command as sent.
func (rec *recorder) one(call string, cmd redis.Cmder, words ...string) {
	rec.steps = append(rec.steps, result(call, cmd, words))
}

func result(call string, cmd redis.Cmder, words []string) step {
	s := step{Call: call, Command: strings.Join(words, " "), Args: len(words)}
	if err := cmd.Err(); err == redis.Nil {
		s.Nil = true
	} else {
		s.Error = errText(err)
	}
	return s
}

// exec runs a pipeline's Exec and records it; queued are its commands as sent.
func (rec *recorder) exec(call string, pipe *redis.Pipeline, queued [][]string) {
	_, err := pipe.Exec()
	pipe.Close()
	s := step{Call: call, Error: errText(err)}
	if err == redis.Nil {
		s.Error, s.Nil = "", true
	}
	for _, words := range queued {
		s.Commands = append(s.Commands, strings.Join(words, " "))
	}
	rec.steps = append(rec.steps, s)
}

// runScript runs the fixed script and returns its steps.
func runScript(c *redis.Client) []step {
	rec := &recorder{}
	rec.one("Client.Set", c.Set("gotrace:key", "literal-redis-value", 0), "set", "gotrace:key", "literal-redis-value")
	rec.one("Client.Get", c.Get("gotrace:key"), "get", "gotrace:key")
	rec.one("Client.Get", c.Get("gotrace:missing"), "get", "gotrace:missing")
	rec.one("Client.Incr", c.Incr("gotrace:counter"), "incr", "gotrace:counter")
	rec.one("Client.HSet", c.HSet("gotrace:hash", "field", "literal-hash-value"), "hset", "gotrace:hash", "field", "literal-hash-value")
	rec.one("Client.Del", c.Del("gotrace:key"), "del", "gotrace:key")

	pipe := c.Pipeline()
	pipe.Set("gotrace:piped", "literal-pipeline-value", 0)
	pipe.Get("gotrace:piped")
	pipe.Incr("gotrace:counter")
	rec.exec("Pipeline.Exec", pipe, [][]string{
		{"set", "gotrace:piped", "literal-pipeline-value"},
		{"get", "gotrace:piped"},
		{"incr", "gotrace:counter"},
	})

	tx := c.TxPipeline()
	tx.Set("gotrace:multi", "literal-multi-value", 0)
	tx.Incr("gotrace:counter")
	rec.exec("TxPipeline.Exec", tx, [][]string{
		{"set", "gotrace:multi", "literal-multi-value"},
		{"incr", "gotrace:counter"},
	})

	rec.one("Client.Incr", c.Incr("gotrace:hash"), "incr", "gotrace:hash")
	return rec.steps
}

// runTwo runs GET and INCR.
func runTwo(c *redis.Client) []step {
	rec := &recorder{}
	rec.one("Client.Get", c.Get("gotrace:key"), "get", "gotrace:key")
	rec.one("Client.Incr", c.Incr("gotrace:counter"), "incr", "gotrace:counter")
	return rec.steps
}
