// Demo backend: a plain Go net/http service with no tracing code.
package main

import (
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := "127.0.0.1:8081"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /inventory/{id}", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(10+rand.IntN(20)) * time.Millisecond)
		fmt.Fprintf(w, `{"item":%q,"stock":%d}`, r.PathValue("id"), rand.IntN(100))
	})
	mux.HandleFunc("GET /prices/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "13" {
			http.Error(w, "price service unavailable", http.StatusServiceUnavailable)
			return
		}
		time.Sleep(5 * time.Millisecond)
		fmt.Fprintf(w, `{"item":%q,"price":%d}`, r.PathValue("id"), 100+rand.IntN(900))
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	log.Fatal(http.ListenAndServe(addr, mux))
}
