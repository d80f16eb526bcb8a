// Command sqlapp is the e2e tests' Go service with a database: unmodified,
// uninstrumented. Each HTTP request runs SQL through a real driver:
//
//	/pgx/users/{id}    pgx (extended protocol)
//	/pq/users/{id}     lib/pq via database/sql
//	/mysql/users/{id}  go-sql-driver/mysql, a statement prepared once at start
//	/pgx/missing       a query on a missing table (an error)
//
// DSNs come from PG_DSN and MYSQL_DSN. It prints "listening <port>".
package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/lib/pq"
)

func main() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("PG_DSN"))
	must(err)
	pq, err := sql.Open("postgres", os.Getenv("PG_DSN"))
	must(err)
	my, err := sql.Open("mysql", os.Getenv("MYSQL_DSN"))
	must(err)
	byID, err := my.Prepare("SELECT name FROM users WHERE id = ?")
	must(err)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /pgx/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		var name string
		err := pool.QueryRow(r.Context(), "SELECT name FROM users WHERE id = $1", r.PathValue("id")).Scan(&name)
		reply(w, name, err)
	})
	mux.HandleFunc("GET /pq/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		var name string
		err := pq.QueryRowContext(r.Context(), "SELECT name FROM users WHERE id = $1", r.PathValue("id")).Scan(&name)
		reply(w, name, err)
	})
	mux.HandleFunc("GET /mysql/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		var name string
		err := byID.QueryRowContext(r.Context(), r.PathValue("id")).Scan(&name)
		reply(w, name, err)
	})
	mux.HandleFunc("GET /pgx/missing", func(w http.ResponseWriter, r *http.Request) {
		_, err := pool.Exec(r.Context(), "SELECT * FROM no_such_table WHERE id = 7")
		reply(w, "", err)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	http.Serve(ln, mux)
}

func reply(w http.ResponseWriter, name string, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, name)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
