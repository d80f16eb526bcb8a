package capture

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringMap reads the data ring in place, without a syscall: each record is
// handed over as a slice of the mapped ring and given back to the kernel
// after the callback returns (Chunk.Data aliasing the ring is already the
// parsers' contract, probe.Chunk). cilium/ebpf's Reader asks epoll first
// (epoll_wait with a zero timeout on every poll: a syscall, which wakes the
// Go runtime's sysmon from its deep sleep into a millisecond of 20 µs
// naps), copies every record out under a mutex, and publishes the consumer
// position per record (a cache line the producing CPUs read on every
// reservation).
//
// The layout is the kernel's (kernel/bpf/ringbuf.c): a consumer page the
// reader writes, then a producer page and the data pages mapped twice in a
// row, so a record that wraps around is contiguous.
type ringMap struct {
	cons, prod []byte // the two mappings
	consPos    *uint64
	prodPos    *uint64
	data       []byte
	mask       uint64
}

const (
	ringBusyBit    = 1 << 31 // the record is reserved, not yet committed
	ringDiscardBit = 1 << 30 // the record was discarded
	ringHdrSize    = 8
	// releaseEvery records, the consumer position is published while
	// draining, so the kernel gets space back during a long drain.
	releaseEvery = 64
)

func newRingMap(m *ebpf.Map) (*ringMap, error) {
	size := int(m.MaxEntries())
	page := os.Getpagesize()
	cons, err := unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map ring consumer page: %w", err)
	}
	prod, err := unix.Mmap(m.FD(), int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		_ = unix.Munmap(cons)
		return nil, fmt.Errorf("map ring data: %w", err)
	}
	return &ringMap{
		cons:    cons,
		prod:    prod,
		consPos: (*uint64)(unsafe.Pointer(&cons[0])),
		prodPos: (*uint64)(unsafe.Pointer(&prod[0])),
		data:    prod[page:],
		mask:    uint64(size - 1),
	}, nil
}

// drain hands fn every committed record, in ring order, until the ring is
// empty or the next record is still being written (a later drain gets it).
// The slice is valid only during fn. Returns how many records it read.
func (r *ringMap) drain(fn func([]byte)) int {
	cons := atomic.LoadUint64(r.consPos)
	n := 0
	for {
		prod := atomic.LoadUint64(r.prodPos) // orders the record reads after it
		if cons == prod {
			break
		}
		off := cons & r.mask
		// The length word is written last (xchg) by the kernel's commit.
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[off])))
		if hdr&ringBusyBit != 0 {
			break
		}
		size := uint64(hdr &^ (ringBusyBit | ringDiscardBit))
		if hdr&ringDiscardBit == 0 {
			fn(r.data[off+ringHdrSize : off+ringHdrSize+size : off+ringHdrSize+size])
		}
		cons += ringHdrSize + (size+7)&^7
		if n++; n%releaseEvery == 0 {
			atomic.StoreUint64(r.consPos, cons)
		}
	}
	atomic.StoreUint64(r.consPos, cons)
	return n
}

func (r *ringMap) close() {
	if r.cons != nil {
		_ = unix.Munmap(r.cons)
		_ = unix.Munmap(r.prod)
		r.cons, r.prod = nil, nil
	}
}
