// Command grpcapp is the e2e tests' gRPC / h2c program: unmodified,
// uninstrumented.
//
//	grpcapp serve        a gRPC server (the standard health service); prints "listening <port>"
//	grpcapp h2c          an HTTP/2 cleartext server (prior knowledge); prints "listening <port>"
//	grpcapp call ADDR N  N unary health checks against ADDR, then exits
//	grpcapp par ADDR N   N concurrent health checks on one connection (their
//	                     HEADERS frames tend to share a write), then exits
//	grpcapp load ADDR C N PAD  N health checks from C goroutines on one
//	                     connection, each with PAD bytes of its own metadata
//	                     (the HPACK table churns, reads and writes carry many
//	                     streams), then exits; with a 6th argument "ids",
//	                     check i asks for service "i"
//	grpcapp hop PORT [WORKERS]  a gRPC health server whose Check (and Watch,
//	                     server streaming: one answer) for service S first
//	                     GETs http://127.0.0.1:PORT/users/S and, with
//	                     $PG_DSN, selects a user from PostgreSQL (with
//	                     WORKERS > 0: grpc.NumStreamWorkers); prints
//	                     "listening <port>"
//	grpcapp front ADDR [MODE]  an HTTP/1 server whose handler for /front/ID
//	                     makes, on one gRPC connection to ADDR, the Checks of
//	                     services 10*ID+1, +2 and +3 and a Watch of 10*ID+4:
//	                     one after the other (MODE seq, the default), all at
//	                     once from goroutines of an errgroup (par), or handed
//	                     to a pool of 4 goroutines started with the program
//	                     (pool); prints "listening <port>"
//	grpcapp get URL C N  N GETs of URL<i> (i = 1..N) from C goroutines,
//	                     then exits
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	_ "github.com/lib/pq"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

func main() {
	ln := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		fail(err)
		fmt.Printf("listening %d\n", l.Addr().(*net.TCPAddr).Port)
		return l
	}
	switch os.Args[1] {
	case "serve":
		s := grpc.NewServer()
		healthpb.RegisterHealthServer(s, health.NewServer())
		fail(s.Serve(ln()))
	case "hop":
		var opts []grpc.ServerOption
		if len(os.Args) > 3 {
			w, _ := strconv.Atoi(os.Args[3])
			opts = append(opts, grpc.NumStreamWorkers(uint32(w)))
		}
		s := grpc.NewServer(opts...)
		h := &hop{users: "http://127.0.0.1:" + os.Args[2] + "/users/"}
		if dsn := os.Getenv("PG_DSN"); dsn != "" {
			db, err := sql.Open("postgres", dsn)
			fail(err)
			db.SetMaxIdleConns(64)
			h.db = db
		}
		healthpb.RegisterHealthServer(s, h)
		fail(s.Serve(ln()))
	case "front":
		conn, err := grpc.NewClient(os.Args[2], grpc.WithTransportCredentials(insecure.NewCredentials()))
		fail(err)
		f := &fronter{hc: healthpb.NewHealthClient(conn)}
		if len(os.Args) > 3 {
			f.mode = os.Args[3]
		}
		if f.mode == "pool" {
			f.jobs = make(chan func(), 64)
			for range 4 {
				go func() {
					for job := range f.jobs {
						job()
					}
				}()
			}
		}
		fail(http.Serve(ln(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := f.serve(r.Context(), strings.TrimPrefix(r.URL.Path, "/front/")); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			fmt.Fprintln(w, "ok")
		})))
	case "get":
		c, _ := strconv.Atoi(os.Args[3])
		n, _ := strconv.Atoi(os.Args[4])
		tr := &http.Transport{MaxIdleConnsPerHost: c}
		each(c, n, func(i int64) {
			resp, err := tr.RoundTrip(must(http.NewRequest("GET", os.Args[2]+strconv.FormatInt(i, 10), nil)))
			fail(err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				fail(fmt.Errorf("GET %d: %s", i, resp.Status))
			}
		})
	case "h2c":
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s over %s\n", r.URL.Path, r.Proto)
		})
		fail(http.Serve(ln(), h2c.NewHandler(h, &http2.Server{})))
	case "load":
		c, _ := strconv.Atoi(os.Args[3])
		n, _ := strconv.Atoi(os.Args[4])
		pad, _ := strconv.Atoi(os.Args[5])
		ids := len(os.Args) > 6 && os.Args[6] == "ids"
		conn, err := grpc.NewClient(os.Args[2], grpc.WithTransportCredentials(insecure.NewCredentials()))
		fail(err)
		defer conn.Close()
		hc := healthpb.NewHealthClient(conn)
		each(c, n, func(i int64) {
			v := strings.Repeat(strconv.FormatInt(i, 36), pad/len(strconv.FormatInt(i, 36))+1)[:pad]
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-pad", v)
			req := &healthpb.HealthCheckRequest{}
			if ids {
				req.Service = strconv.FormatInt(i, 10)
			}
			_, err := hc.Check(ctx, req)
			fail(err)
		})
	case "call", "par":
		n, _ := strconv.Atoi(os.Args[3])
		conn, err := grpc.NewClient(os.Args[2], grpc.WithTransportCredentials(insecure.NewCredentials()))
		fail(err)
		defer conn.Close()
		c := healthpb.NewHealthClient(conn)
		if os.Args[1] == "par" {
			conn.Connect()
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
					fail(err)
				}()
			}
			wg.Wait()
			return
		}
		for i := 0; i < n; i++ {
			resp, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
			fail(err)
			fmt.Println(resp.GetStatus())
		}
	}
}

// fronter makes front's calls for one request: three unary, one server
// streaming.
type fronter struct {
	hc   healthpb.HealthClient
	mode string
	jobs chan func()
}

func (f *fronter) serve(ctx context.Context, id string) error {
	n, err := strconv.Atoi(id)
	if err != nil {
		return err
	}
	calls := []func() error{}
	for k := 1; k <= 3; k++ {
		calls = append(calls, func() error {
			_, err := f.hc.Check(ctx, &healthpb.HealthCheckRequest{Service: strconv.Itoa(10*n + k)})
			return err
		})
	}
	calls = append(calls, func() error { return f.watch(ctx, strconv.Itoa(10*n+4)) })
	switch f.mode {
	case "par":
		g, _ := errgroup.WithContext(ctx)
		for _, c := range calls {
			g.Go(c)
		}
		return g.Wait()
	case "pool":
		errs := make(chan error, len(calls))
		for _, c := range calls {
			f.jobs <- func() { errs <- c() }
		}
		for range calls {
			if err := <-errs; err != nil {
				return err
			}
		}
		return nil
	}
	for _, c := range calls {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

func (f *fronter) watch(ctx context.Context, service string) error {
	st, err := f.hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return err
	}
	for {
		if _, err := st.Recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// hop answers a health check after calls of its own: the handler
// goroutine's outgoing requests, for the agent to link to the RPC.
type hop struct {
	healthpb.UnimplementedHealthServer
	users string
	db    *sql.DB
}

func (h *hop) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := h.work(ctx, r.GetService()); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (h *hop) Watch(r *healthpb.HealthCheckRequest, st healthpb.Health_WatchServer) error {
	if err := h.work(st.Context(), r.GetService()); err != nil {
		return err
	}
	return st.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
}

func (h *hop) work(ctx context.Context, service string) error {
	resp, err := http.Get(h.users + service)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if h.db != nil {
		var name string
		if err := h.db.QueryRowContext(ctx, "SELECT name FROM users WHERE id = $1", 1).Scan(&name); err != nil {
			return err
		}
	}
	return nil
}

// each runs do(1..n) from c goroutines.
func each(c, n int, do func(i int64)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				do(i)
			}
		}()
	}
	wg.Wait()
}

func must[T any](v T, err error) T {
	fail(err)
	return v
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
