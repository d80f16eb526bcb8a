// Command goserver is the Go net/http server of the e2e tests: unmodified,
// uninstrumented, keep-alive. It prints "listening <port>" when ready.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %s\n", r.PathValue("id"))
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	// A streamed (chunked) response larger than the kernel capture limit.
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 8000)
		for i := 0; i < 4; i++ {
			io.WriteString(w, chunk)
			w.(http.Flusher).Flush()
		}
	})
	// /call?url=U makes an outbound request: a CLIENT span inside this SERVER span.
	mux.HandleFunc("GET /call", func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		fmt.Fprintf(w, "downstream said %d\n", resp.StatusCode)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	http.Serve(ln, mux)
}
