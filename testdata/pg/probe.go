// The PostgreSQL door's differential harness, Go side: lib/pq (Grafana's driver) runs the same
// steps against a target and prints what it saw as JSON. Grafana sends a multi-statement
// simple query to set the time zone before each panel's query; lib/pq prepares statements
// with parameters (text results) and reads errors' SQLSTATEs.
//
//	go run probe.go '<libpq connection string>'
package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"

	"github.com/lib/pq"
)

func rows(db *sql.DB, q string, args ...interface{}) map[string]interface{} {
	r, err := db.Query(q, args...)
	if err != nil {
		if e, ok := err.(*pq.Error); ok {
			return map[string]interface{}{"error": string(e.Code)}
		}
		return map[string]interface{}{"error": err.Error()}
	}
	defer r.Close()
	cols, _ := r.Columns()
	types, _ := r.ColumnTypes()
	names := []string{}
	for _, t := range types {
		names = append(names, t.DatabaseTypeName())
	}
	out := [][]interface{}{}
	for r.Next() {
		vals := make([]interface{}, len(cols))
		ptrs := make([]interface{}, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			return map[string]interface{}{"error": err.Error()}
		}
		row := []interface{}{}
		for _, v := range vals {
			switch x := v.(type) {
			case []byte:
				row = append(row, "bytes:"+string(x))
			case nil:
				row = append(row, nil)
			default:
				row = append(row, fmt.Sprintf("%T:%v", x, x))
			}
		}
		out = append(out, row)
	}
	if err := r.Err(); err != nil {
		if e, ok := err.(*pq.Error); ok {
			return map[string]interface{}{"error": string(e.Code)}
		}
	}
	return map[string]interface{}{"columns": cols, "types": names, "rows": out}
}

func main() {
	db, err := sql.Open("postgres", os.Args[1])
	if err != nil {
		panic(err)
	}
	db.SetMaxOpenConns(1)
	res := map[string]interface{}{}
	res["multi"] = rows(db, "SET TIMEZONE = 'UTC'; SELECT i4, t FROM items ORDER BY i4")
	res["rows"] = rows(db, "SELECT i4, i8, f8, n, t, b, d, ts, tz FROM items ORDER BY i4")
	res["param"] = rows(db, "SELECT t FROM items WHERE i4 = $1", 2)
	res["missing_table"] = rows(db, "SELECT * FROM no_such_table")
	res["grafana_macro"] = rows(db, "SELECT d AS time, i4 AS value FROM items WHERE d BETWEEN '1990-01-01T00:00:00Z' AND '2030-01-01T00:00:00Z' ORDER BY 1")
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}
