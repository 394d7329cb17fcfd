//go:build cgo

package main

// SQLite through github.com/mattn/go-sqlite3, which is cgo: only builds with cgo (the
// externally linked variants of the test-app matrix) have it.

import _ "github.com/mattn/go-sqlite3"

func init() { sqliteBuilt = true }
