// Command pgxclient is an HTTP server that talks to PostgreSQL through pgx v4's native API
// (github.com/jackc/pgx/v4: one pgx.Conn from pgx.Connect; not database/sql, not pgxpool), the
// test target for database client spans of pgx. It is built in GOPATH mode against Debian's
// packaged pgx in /usr/share/gocode (bookworm: 4.15.0).
//
// Flags:
//
//	-listen HOST:PORT   where to serve HTTP (default 127.0.0.1:0, a free port)
//	-dsn DSN            the database, e.g. postgres://u:pw@127.0.0.1:5432/db?sslmode=disable
//
// The program connects and creates its table (CREATE TABLE IF NOT EXISTS) before it prints, on
// stdout, its one line
//
//	READY 127.0.0.1:PORT
//
// Routes:
//
//	GET /healthz   200 "ok"
//	GET /script    runs the fixed script of runScript on the request's context and answers 200
//	               with {"steps": [step, ...]}, a step per pgx call made, in order
//	GET /two       two queries on the request's context, 200 with {"steps": [...]}, 500 when
//	               one failed
//
// A pgx.Conn is not safe for concurrent use: requests take turns (a mutex). A connection
// found closed is opened again. SIGTERM or SIGINT shuts the program down.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
)

const (
	createTable  = "CREATE TABLE IF NOT EXISTS gotrace_native (id INTEGER PRIMARY KEY, name VARCHAR(64))"
	deleteAll    = "DELETE FROM gotrace_native"
	insertAlpha  = "INSERT INTO gotrace_native (id, name) VALUES (1, 'literal-alpha')"
	insertParams = "INSERT INTO gotrace_native (id, name) VALUES ($1, $2)"
	selectByID   = "SELECT name FROM gotrace_native WHERE id = $1"
	selectAll    = "SELECT id, name FROM gotrace_native WHERE name <> 'literal-gamma' AND id < 4242 ORDER BY id"
	insertFails  = "INSERT INTO gotrace_missing_table (id) VALUES (31337)"
	selectNoRow  = "SELECT name FROM gotrace_native WHERE id = 987654"
	batchCount   = "SELECT count(*) FROM gotrace_native"
	batchUpdate  = "UPDATE gotrace_native SET name = 'literal-batch' WHERE id = $1"
	batchSelect  = "SELECT name FROM gotrace_native WHERE id = $1"
	selectOne    = "SELECT 1"
)

// step is one pgx call the program made.
type step struct {
	// The method called, as "Type.Method": Conn.Exec, Conn.Begin, Conn.Query, Conn.QueryRow,
	// Conn.SendBatch, Tx.Exec, Tx.Commit, Tx.Rollback, BatchResults.Exec,
	// BatchResults.QueryRow, BatchResults.Close.
	Call string `json:"call"`
	// Its SQL text ("" for Begin, Commit, Rollback, SendBatch and BatchResults.Close; a
	// BatchResults read carries the text of the queued query it reads).
	SQL string `json:"sql"`
	// How many arguments it passed for the placeholders.
	Args int `json:"args"`
	// The error (for a query, the first of the call's, the scan's or the rows' error;
	// pgx.ErrNoRows excepted, see Rows), "" when none.
	Error string `json:"error"`
	// Queries only: how many rows were read. A QueryRow whose Scan found no row
	// (pgx.ErrNoRows) has 0 and Error "".
	Rows *int `json:"rows,omitempty"`
	// SendBatch: the queued queries' texts, in order.
	Batch []string `json:"batch,omitempty"`
	// A deferred call (the idiomatic `defer tx.Rollback(ctx)`, which after a Commit returns
	// pgx.ErrTxClosed without talking to the database).
	Deferred bool `json:"deferred,omitempty"`
}

type answer struct {
	Steps []step `json:"steps"`
}

// client holds the one connection, which requests take turns to use.
type client struct {
	dsn  string
	mu   sync.Mutex
	conn *pgx.Conn
}

// connection returns the open connection, opening it (and creating the table) first when
// there is none or it was closed. Call with mu held.
func (c *client) connection(ctx context.Context) (*pgx.Conn, error) {
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn, nil
	}
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, createTable); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	c.conn = conn
	return conn, nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("pgxclient: ")
	listen := flag.String("listen", "127.0.0.1:0", "serve HTTP on HOST:PORT")
	dsn := flag.String("dsn", "", "the PostgreSQL database's DSN (required)")
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments: %q", flag.Args())
	}
	if *dsn == "" {
		log.Fatal("-dsn is required")
	}
	c := &client{dsn: *dsn}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if _, err := c.connection(ctx); err != nil {
		log.Fatal(err)
	}
	cancel()

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", healthz)
	mux.HandleFunc("/script", c.handler(runScript, false))
	mux.HandleFunc("/two", c.handler(runTwo, true))
	serve(*listen, mux)
	c.mu.Lock()
	if c.conn != nil {
		c.conn.Close(context.Background())
	}
	c.mu.Unlock()
}

// handler runs run on the request's context with the connection and answers its steps;
// with failStatus, a failed step makes the answer a 500.
func (c *client) handler(run func(context.Context, *pgx.Conn) []step, failStatus bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		conn, err := c.connection(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		steps := run(r.Context(), conn)
		status := http.StatusOK
		for _, s := range steps {
			if failStatus && s.Error != "" {
				status = http.StatusInternalServerError
			}
		}
		writeJSON(w, status, answer{Steps: steps})
	}
}

type recorder struct {
	steps []step
}

func (rec *recorder) add(s step) { rec.steps = append(rec.steps, s) }

func (rec *recorder) exec(ctx context.Context, call string, execer interface {
	Exec(context.Context, string, ...interface{}) (pgconn.CommandTag, error)
}, query string, args ...interface{}) {
	_, err := execer.Exec(ctx, query, args...)
	rec.add(step{Call: call, SQL: query, Args: len(args), Error: errText(err)})
}

// scanned records a QueryRow-like call whose Scan of one value returned err.
func (rec *recorder) scanned(call, query string, nargs int, err error) {
	rows := 1
	if errors.Is(err, pgx.ErrNoRows) {
		rows, err = 0, nil
	} else if err != nil {
		rows = 0
	}
	rec.add(step{Call: call, SQL: query, Args: nargs, Error: errText(err), Rows: &rows})
}

// query runs Conn.Query on ctx and reads every row.
func (rec *recorder) query(ctx context.Context, conn *pgx.Conn, query string) {
	n := 0
	rows, err := conn.Query(ctx, query)
	if err == nil {
		for rows.Next() {
			n++
		}
		rows.Close()
		err = rows.Err()
	}
	rec.add(step{Call: "Conn.Query", SQL: query, Error: errText(err), Rows: &n})
}

// runScript runs the fixed script on ctx and returns its steps.
func runScript(ctx context.Context, conn *pgx.Conn) []step {
	rec := &recorder{}
	rec.exec(ctx, "Conn.Exec", conn, createTable)
	rec.exec(ctx, "Conn.Exec", conn, deleteAll)
	rec.committed(ctx, conn)
	for _, id := range []int{1, 2, 1} {
		var name string
		err := conn.QueryRow(ctx, selectByID, id).Scan(&name)
		rec.scanned("Conn.QueryRow", selectByID, 1, err)
	}
	rec.query(ctx, conn, selectAll)
	rec.exec(ctx, "Conn.Exec", conn, insertFails)
	var name string
	rec.scanned("Conn.QueryRow", selectNoRow, 0, conn.QueryRow(ctx, selectNoRow).Scan(&name))
	rec.batch(ctx, conn)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	rec.query(cctx, conn, selectOne)
	return rec.steps
}

// committed: Begin, two inserts, Commit, and the idiomatic deferred Rollback, which after
// the Commit does nothing (pgx.ErrTxClosed).
func (rec *recorder) committed(ctx context.Context, conn *pgx.Conn) {
	tx, err := conn.Begin(ctx)
	rec.add(step{Call: "Conn.Begin", Error: errText(err)})
	if err != nil {
		return
	}
	defer func() {
		err := tx.Rollback(ctx)
		rec.add(step{Call: "Tx.Rollback", Error: errText(err), Deferred: true})
	}()
	rec.exec(ctx, "Tx.Exec", tx, insertAlpha)
	rec.exec(ctx, "Tx.Exec", tx, insertParams, 2, "param-beta")
	err = tx.Commit(ctx)
	rec.add(step{Call: "Tx.Commit", Error: errText(err)})
}

// batch sends three queued queries in one pgx.Batch and reads their results.
func (rec *recorder) batch(ctx context.Context, conn *pgx.Conn) {
	b := &pgx.Batch{}
	b.Queue(batchCount)
	b.Queue(batchUpdate, 2)
	b.Queue(batchSelect, 2)
	br := conn.SendBatch(ctx, b)
	rec.add(step{Call: "Conn.SendBatch", Batch: []string{batchCount, batchUpdate, batchSelect}})
	var count int
	rec.scanned("BatchResults.QueryRow", batchCount, 0, br.QueryRow().Scan(&count))
	_, err := br.Exec()
	rec.add(step{Call: "BatchResults.Exec", SQL: batchUpdate, Args: 1, Error: errText(err)})
	var name string
	rec.scanned("BatchResults.QueryRow", batchSelect, 1, br.QueryRow().Scan(&name))
	rec.add(step{Call: "BatchResults.Close", Error: errText(br.Close())})
}

// runTwo runs two queries on ctx: a count and a select by id (no row is no error).
func runTwo(ctx context.Context, conn *pgx.Conn) []step {
	rec := &recorder{}
	var count int
	rec.scanned("Conn.QueryRow", batchCount, 0, conn.QueryRow(ctx, batchCount).Scan(&count))
	var name string
	rec.scanned("Conn.QueryRow", selectByID, 1, conn.QueryRow(ctx, selectByID, 1).Scan(&name))
	return rec.steps
}
