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
//	grpcapp hop PORT [WORKERS]  a gRPC health server whose Check for service
//	                     S first GETs http://127.0.0.1:PORT/users/S (with
//	                     WORKERS > 0: grpc.NumStreamWorkers); prints
//	                     "listening <port>"
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
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
		healthpb.RegisterHealthServer(s, &hop{users: "http://127.0.0.1:" + os.Args[2] + "/users/"})
		fail(s.Serve(ln()))
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
		var wg sync.WaitGroup
		var next atomic.Int64
		for w := 0; w < c; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= int64(n); i = next.Add(1) {
					v := strings.Repeat(strconv.FormatInt(i, 36), pad/len(strconv.FormatInt(i, 36))+1)[:pad]
					ctx := metadata.AppendToOutgoingContext(context.Background(), "x-pad", v)
					req := &healthpb.HealthCheckRequest{}
					if ids {
						req.Service = strconv.FormatInt(i, 10)
					}
					_, err := hc.Check(ctx, req)
					fail(err)
				}
			}()
		}
		wg.Wait()
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

// hop answers a health check after a call of its own: the handler
// goroutine's outgoing request, for the agent to link to the RPC.
type hop struct {
	healthpb.UnimplementedHealthServer
	users string
}

func (h *hop) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	resp, err := http.Get(h.users + r.GetService())
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
