/* A socket syscall in flight: what its entry saves for its exit. */
#pragma once

#include "common.h"
#include "h2.h"

/* gRPC C-core (Python, Ruby, C++) sends one iovec per HPACK string and
 * frame piece: 27 in the sendmsg of one request, up to 260. */
#define MAX_IOV 1024 /* UIO_MAXIOV */

/* First bytes of a send read to classify it: the HTTP/2 client preface,
 * a frame header, an HTTP/1 request or response start. */
#define SEND_HEAD H2_PREFACE_LEN

enum io_kind {
	IO_BUF = 0, /* (fd, buf) read/write/recvfrom/sendto */
	IO_IOV = 1, /* (fd, iov, iovcnt) readv/writev */
	IO_MSG = 2, /* (fd, msghdr) recvmsg/sendmsg */
	IO_SEND = 3, /* sys_exit only: a send, whose arguments its entry saved */
};

#include "emit.h"

struct io_args {
	__u64 start_ns;
	__u64 ptr; /* buf, iovec array or msghdr */
	__u32 iovcnt;
	__s32 fd;
	__u8 kind;
	__u8 dir;
	__u8 state; /* trace_state at entry; 0: no syscall in flight */
	struct trace_ctx ctx; /* a request written while serving one: its client span */
};

/* Syscall arguments between enter and exit, per thread: task storage,
 * found from the task without hashing, locking or freeing per syscall
 * (exit clears state), and freed with the thread. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct io_args);
} active_io SEC(".maps");

/* Scratch event, per CPU: too big for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct data_event);
} scratch SEC(".maps");
