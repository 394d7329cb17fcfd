package main

// The fixed script /script runs, and /two. The SQL texts are literal constants so that a test
// can look for them in the spans a tracer exported; only the placeholders differ between
// databases ($1 for PostgreSQL, ? for MySQL and SQLite).

import (
	"context"
	"database/sql"
	"errors"
	"strings"
)

const (
	createTable  = "CREATE TABLE IF NOT EXISTS gotrace_items (id INTEGER PRIMARY KEY, name VARCHAR(64))"
	deleteAll    = "DELETE FROM gotrace_items"
	insertAlpha  = "INSERT INTO gotrace_items (id, name) VALUES (1, 'literal-alpha')"
	insertParams = "INSERT INTO gotrace_items (id, name) VALUES ($1, $2)"
	selectByID   = "SELECT name FROM gotrace_items WHERE id = $1"
	selectAll    = "SELECT id, name FROM gotrace_items WHERE name <> 'literal-gamma' AND id < 4242 ORDER BY id"
	insertFails  = "INSERT INTO gotrace_missing_table (id) VALUES (31337)"
	selectNoRow  = "SELECT name FROM gotrace_items WHERE id = 987654"
	selectOne    = "SELECT 1"
	updateDelta  = "UPDATE gotrace_items SET name = 'literal-delta' WHERE id = 1"
	countAll     = "SELECT count(*) FROM gotrace_items"
)

// step is one database/sql call the program made.
type step struct {
	// The method called, as "Type.Method": DB.ExecContext, DB.QueryContext,
	// DB.QueryRowContext, DB.PrepareContext, DB.BeginTx, Tx.ExecContext, Tx.Commit,
	// Tx.Rollback, Stmt.QueryRowContext, Stmt.Close.
	Call string `json:"call"`
	// Its SQL text as sent ("" for BeginTx, Commit, Rollback, Stmt.Close; a Stmt's calls
	// carry the prepared statement's text).
	SQL string `json:"sql"`
	// How many arguments it passed for the placeholders.
	Args int `json:"args"`
	// The error the call returned (for a query, the first of the call's, the scan's or the
	// rows' error; sql.ErrNoRows excepted, see Rows), "" when none.
	Error string `json:"error"`
	// Queries only: how many rows were read. A QueryRowContext whose Scan found no row
	// (sql.ErrNoRows) has 0 and Error "".
	Rows *int `json:"rows,omitempty"`
	// A deferred call (the idiomatic `defer tx.Rollback()`, which after a Commit returns
	// sql.ErrTxDone without talking to the database).
	Deferred bool `json:"deferred,omitempty"`
}

// recorder collects the steps of one request.
type recorder struct {
	d     *database
	steps []step
}

// q turns $N placeholders into ? for the databases that want those.
func (rec *recorder) q(query string) string {
	if rec.d.dollar {
		return query
	}
	for _, p := range []string{"$1", "$2"} {
		query = strings.ReplaceAll(query, p, "?")
	}
	return query
}

func (rec *recorder) add(s step) { rec.steps = append(rec.steps, s) }

func (rec *recorder) exec(ctx context.Context, call string, execer interface {
	ExecContext(context.Context, string, ...interface{}) (sql.Result, error)
}, query string, args ...interface{}) {
	query = rec.q(query)
	_, err := execer.ExecContext(ctx, query, args...)
	rec.add(step{Call: call, SQL: query, Args: len(args), Error: errText(err)})
}

// queryRow runs QueryRowContext (of a DB or a Stmt: query is "" for a Stmt) and scans one
// string.
func (rec *recorder) queryRow(call, query string, row *sql.Row, nargs int) {
	var name string
	err := row.Scan(&name)
	rows := 1
	if errors.Is(err, sql.ErrNoRows) {
		rows, err = 0, nil
	} else if err != nil {
		rows = 0
	}
	rec.add(step{Call: call, SQL: query, Args: nargs, Error: errText(err), Rows: &rows})
}

// runScript runs the fixed script on ctx and returns its steps.
func runScript(ctx context.Context, d *database) []step {
	rec := &recorder{d: d}
	db := d.db

	// 1, 2: the table, emptied.
	rec.exec(ctx, "DB.ExecContext", db, createTable)
	rec.exec(ctx, "DB.ExecContext", db, deleteAll)

	// 3: a transaction that commits, with the idiomatic deferred Rollback.
	rec.committed(ctx)

	// 4: a prepared statement run five times.
	query := rec.q(selectByID)
	stmt, err := db.PrepareContext(ctx, query)
	rec.add(step{Call: "DB.PrepareContext", SQL: query, Error: errText(err)})
	if err == nil {
		for _, id := range []int{1, 2, 1, 2, 1} {
			rec.queryRow("Stmt.QueryRowContext", query, stmt.QueryRowContext(ctx, id), 1)
		}
		err = stmt.Close()
		rec.add(step{Call: "Stmt.Close", Error: errText(err)})
	}

	// 5: a query whose rows are iterated.
	n := 0
	rows, err := db.QueryContext(ctx, selectAll)
	if err == nil {
		for rows.Next() {
			var id int
			var name string
			if err = rows.Scan(&id, &name); err != nil {
				break
			}
			n++
		}
		if err == nil {
			err = rows.Err()
		}
		rows.Close()
	}
	rec.add(step{Call: "DB.QueryContext", SQL: selectAll, Error: errText(err), Rows: &n})

	// 6: a statement the database refuses.
	rec.exec(ctx, "DB.ExecContext", db, insertFails)

	// 7: a query with no row: sql.ErrNoRows from Scan, no error of the query's own.
	rec.queryRow("DB.QueryRowContext", selectNoRow, db.QueryRowContext(ctx, selectNoRow), 0)

	// 8: a query on a context cancelled before the call.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	zero := 0
	rows, err = db.QueryContext(cctx, selectOne)
	if err == nil {
		rows.Close()
	}
	rec.add(step{Call: "DB.QueryContext", SQL: selectOne, Error: errText(err), Rows: &zero})

	// 9: a transaction that rolls back.
	tx, err := db.BeginTx(ctx, nil)
	rec.add(step{Call: "DB.BeginTx", Error: errText(err)})
	if err == nil {
		rec.exec(ctx, "Tx.ExecContext", tx, updateDelta)
		err = tx.Rollback()
		rec.add(step{Call: "Tx.Rollback", Error: errText(err)})
	}
	return rec.steps
}

// committed is step 3: BeginTx, two inserts, Commit, and the deferred Rollback every Go
// programmer writes, which after the Commit does nothing (sql.ErrTxDone).
func (rec *recorder) committed(ctx context.Context) {
	tx, err := rec.d.db.BeginTx(ctx, nil)
	rec.add(step{Call: "DB.BeginTx", Error: errText(err)})
	if err != nil {
		return
	}
	defer func() {
		err := tx.Rollback()
		rec.add(step{Call: "Tx.Rollback", Error: errText(err), Deferred: true})
	}()
	rec.exec(ctx, "Tx.ExecContext", tx, insertAlpha)
	rec.exec(ctx, "Tx.ExecContext", tx, insertParams, 2, "param-beta")
	err = tx.Commit()
	rec.add(step{Call: "Tx.Commit", Error: errText(err)})
}

// runTwo runs two queries on ctx: a count and a select by id (no row is no error).
func runTwo(ctx context.Context, d *database) []step {
	rec := &recorder{d: d}
	var count int
	err := d.db.QueryRowContext(ctx, countAll).Scan(&count)
	rows := 1
	if err != nil {
		rows = 0
	}
	rec.add(step{Call: "DB.QueryRowContext", SQL: countAll, Error: errText(err), Rows: &rows})
	query := rec.q(selectByID)
	rec.queryRow("DB.QueryRowContext", query, d.db.QueryRowContext(ctx, query, 1), 1)
	return rec.steps
}
