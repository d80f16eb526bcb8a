// Package bpf holds the kernel programs (C, CO-RE) and their bpf2go-generated
// loaders. The generated *_bpfel.go and .o files are committed so that
// `go build` needs no clang; `make generate` rebuilds them.
package bpf

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64,arm64 -type event_hdr -type conn_addr -type trace_ctx Capture capture.c -- -I./headers
