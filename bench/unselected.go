package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The "unselected" workload: a process the agent does not trace doing
// syscall-heavy socket I/O. Its cost with the agent loaded is the raw
// syscall tracepoints' dispatch (every syscall of every process on the node
// enters the BPF programs; a write adds a pid lookup at entry and, at exit,
// a check that the thread has no task storage) plus sockops on its
// connection setup.

const syscallChildEnv = "TRACER_BENCH_SYSCALL_CHILD"

// syscallChild runs in a re-executed bench binary: n write(2) calls of 64
// bytes on a loopback TCP connection drained by a reader; prints the mean
// nanoseconds per write.
func syscallChild(n int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	srv, err := ln.Accept()
	if err != nil {
		return err
	}
	drained := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(io.Discard, srv, make([]byte, 1<<16))
		drained <- err
	}()
	raw, err := cl.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 64)
	done, werr := 0, error(nil)
	start := time.Now()
	// One callback issues every write(2) directly; on EAGAIN (send buffer
	// full) it returns false and the runtime waits for writability.
	err = raw.Write(func(fd uintptr) bool {
		for done < n {
			_, e := syscall.Write(int(fd), buf)
			if e == syscall.EAGAIN {
				return false
			}
			if e != nil && e != syscall.EINTR {
				werr = e
				return true
			}
			if e == nil {
				done++
			}
		}
		return true
	})
	elapsed := time.Since(start)
	cl.Close()
	<-drained
	if err = errors.Join(err, werr); err != nil {
		return err
	}
	fmt.Printf("ns_per_write %.1f\n", float64(elapsed.Nanoseconds())/float64(n))
	return nil
}

// runSyscallChild runs the child and returns its ns per write.
func runSyscallChild(n int) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	c, err := startChild([]string{syscallChildEnv + "=" + strconv.Itoa(n)}, self)
	if err != nil {
		return 0, err
	}
	line, err := c.waitFor("ns_per_write ", 5*time.Minute)
	c.kill()
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(line), 64)
}

// runUnselected alternates the child without and with the agent loaded
// (tracing an idle sleep process, never the child).
func runUnselected(cfg config, rcv *receiver) (row, error) {
	r := row{name: "unselected", conns: "-"}
	var base, agent []float64
	for range cfg.pairs {
		ns, err := runSyscallChild(cfg.syscalls)
		if err != nil {
			return r, err
		}
		base = append(base, ns)

		idle, err := startChild(nil, "sleep", "3600")
		if err != nil {
			return r, err
		}
		a, err := startAgent(cfg.agent, rcv, nil, idle.pid())
		if err != nil {
			idle.kill()
			return r, err
		}
		ns, err = runSyscallChild(cfg.syscalls)
		st, stopErr := a.stop()
		idle.kill()
		if err = errors.Join(err, stopErr); err != nil {
			return r, err
		}
		agent = append(agent, ns)
		r.peakRSS = append(r.peakRSS, float64(st.peakRSS))
		r.ringDrops += st.ringDrops
	}
	rcv.take()
	r.unselBase, r.unselAgent = base, agent
	return r, nil
}
