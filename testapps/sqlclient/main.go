// Command sqlclient is an HTTP server that talks to SQL databases through database/sql, the
// test target for database client spans. It is built in GOPATH mode against Debian's packaged
// drivers in /usr/share/gocode (bookworm): github.com/lib/pq 1.10.7, github.com/jackc/pgx/v4
// 4.15.0 (its database/sql driver, pgx/v4/stdlib), github.com/go-sql-driver/mysql 1.5.0 and,
// in builds with cgo only (sqlite.go), github.com/mattn/go-sqlite3 1.14.16 linked against the
// system's libsqlite3.
//
// Flags (a database whose flag is omitted is not opened):
//
//	-listen HOST:PORT   where to serve HTTP (default 127.0.0.1:0, a free port)
//	-pq DSN             PostgreSQL through lib/pq, e.g. postgres://u:pw@127.0.0.1:5432/db?sslmode=disable
//	-pgx DSN            PostgreSQL through pgx/v4/stdlib (driver name "pgx"), the same DSN form
//	-mysql DSN          MariaDB/MySQL through go-sql-driver/mysql, e.g. u:pw@tcp(127.0.0.1:3306)/db
//	-sqlite PATH        an SQLite file through go-sqlite3 (builds with cgo only; others refuse it)
//
// Each database is opened (sql.Open), pinged and its table created (CREATE TABLE IF NOT EXISTS)
// before the program prints, on stdout, its one line
//
//	READY 127.0.0.1:PORT
//
// Routes (db is one of pq, pgx, mysql, sqlite, and must have been opened):
//
//	GET /healthz         200 "ok"
//	GET /script?db=DB    runs the fixed script of script.go on the request's context and
//	                     answers 200 with {"db": DB, "steps": [step, ...]}, a step per
//	                     database/sql call made, in order (see the step type)
//	GET /two?db=DB       two queries on the request's context (a count and a select by id),
//	                     200 with {"db": DB, "steps": [...]}, 500 when one failed
//
// Every database has one table, gotrace_items, which the script empties first: -pq and -pgx
// given the same database share it, so run their scripts one at a time. The table is created
// before READY so that /two works before any /script.
//
// SIGTERM or SIGINT shuts it down.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"net/http"
	"sort"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v4/stdlib"
	_ "github.com/lib/pq"
)

// A database kind the program can open.
type kind struct {
	name   string // the -flag and the ?db= value
	driver string // the database/sql driver name
	dollar bool   // placeholders are $1, $2 (PostgreSQL), not ?
}

var kinds = []kind{
	{"pq", "postgres", true},
	{"pgx", "pgx", true},
	{"mysql", "mysql", false},
	{"sqlite", "sqlite3", false},
}

// sqliteBuilt is set by sqlite.go, in builds with cgo.
var sqliteBuilt bool

// An open database: its kind and its pool.
type database struct {
	kind
	db *sql.DB
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("sqlclient: ")
	listen := flag.String("listen", "127.0.0.1:0", "serve HTTP on HOST:PORT")
	dsns := map[string]*string{}
	for _, k := range kinds {
		what := "DSN"
		if k.name == "sqlite" {
			what = "PATH"
		}
		dsns[k.name] = flag.String(k.name, "", fmt.Sprintf("open %s %s through %s (omitted: not opened)", k.name, what, k.driver))
	}
	flag.Parse()
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments: %q", flag.Args())
	}
	if *dsns["sqlite"] != "" && !sqliteBuilt {
		log.Fatal("-sqlite: this build has no SQLite driver (it needs cgo)")
	}

	dbs := map[string]*database{}
	for _, k := range kinds {
		dsn := *dsns[k.name]
		if dsn == "" {
			continue
		}
		d, err := open(k, dsn)
		if err != nil {
			log.Fatalf("%s: %v", k.name, err)
		}
		dbs[k.name] = d
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", healthz)
	mux.HandleFunc("/script", func(w http.ResponseWriter, r *http.Request) {
		d, ok := pick(w, r, dbs)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, answer{DB: d.name, Steps: runScript(r.Context(), d)})
	})
	mux.HandleFunc("/two", func(w http.ResponseWriter, r *http.Request) {
		d, ok := pick(w, r, dbs)
		if !ok {
			return
		}
		steps := runTwo(r.Context(), d)
		status := http.StatusOK
		for _, s := range steps {
			if s.Error != "" {
				status = http.StatusInternalServerError
			}
		}
		writeJSON(w, status, answer{DB: d.name, Steps: steps})
	})
	serve(*listen, mux)
	for _, d := range dbs {
		d.db.Close()
	}
}

// open opens, pings and prepares (its table) one database.
func open(k kind, dsn string) (*database, error) {
	db, err := sql.Open(k.driver, dsn)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("ping: %v", err)
	}
	if _, err := db.ExecContext(ctx, createTable); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating the table: %v", err)
	}
	return &database{kind: k, db: db}, nil
}

// pick finds the request's ?db= among the open databases, or answers 400 or 404.
func pick(w http.ResponseWriter, r *http.Request, dbs map[string]*database) (*database, bool) {
	name := r.URL.Query().Get("db")
	if d, ok := dbs[name]; ok {
		return d, true
	}
	open := make([]string, 0, len(dbs))
	for n := range dbs {
		open = append(open, n)
	}
	sort.Strings(open)
	status := http.StatusNotFound
	if name == "" {
		status = http.StatusBadRequest
	}
	http.Error(w, fmt.Sprintf("db=%q is not open; open: %s", name, strings.Join(open, ", ")), status)
	return nil, false
}

type answer struct {
	DB    string `json:"db"`
	Steps []step `json:"steps"`
}
