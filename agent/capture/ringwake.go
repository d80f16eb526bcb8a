package capture

import (
	"context"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringWaker turns the kernel's wakeups of a ring buffer (bpf/common.h
// data_wakeup_flags: when an eighth of the ring waits) into a channel
// send. The data reader then sleeps on a Go timer instead of in
// epoll_wait: a goroutine that blocks in a syscall every few milliseconds
// keeps the runtime's sysmon thread waking ~1000 times a second to hand
// its P off. This goroutine blocks in one epoll_wait that returns only for
// a wakeup (edge-triggered: each kernel wake_up, not "data is waiting").
type ringWaker struct {
	epfd, evfd int
	C          chan struct{}
}

func newRingWaker(m *ebpf.Map) (*ringWaker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("ring waker: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("ring waker: %w", err)
	}
	w := &ringWaker{epfd: epfd, evfd: evfd, C: make(chan struct{}, 1)}
	for _, fd := range []int{m.FD(), evfd} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			w.close()
			return nil, fmt.Errorf("ring waker: %w", err)
		}
	}
	return w, nil
}

// run forwards wakeups until ctx is done.
func (w *ringWaker) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { _, _ = unix.Write(w.evfd, []byte{1, 0, 0, 0, 0, 0, 0, 0}) })
	defer stop()
	events := make([]unix.EpollEvent, 2)
	for ctx.Err() == nil {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == w.evfd {
				return
			}
		}
		select {
		case w.C <- struct{}{}:
		default: // the reader has a wakeup pending already
		}
	}
}

func (w *ringWaker) close() {
	unix.Close(w.evfd)
	unix.Close(w.epfd)
}
