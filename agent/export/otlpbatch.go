package export

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
)

// otlpBatcher is the OTLP/HTTP protobuf output's batch processor. The SDK's
// (used by the other outputs) queues a ReadOnlySpan per span — a heap
// snapshot holding the probe's attributes until the batch is encoded — and
// hands batches to the exporter, which walks them again. Here each span is
// encoded on arrival into the batch being filled (encBatch), so nothing of
// it outlives Export, and full batches wait as bytes. Semantics are the
// SDK processor's (bspConfig): a request per maxBatch spans, or after
// delay; at most maxQueue spans waiting, newer ones dropped and counted;
// Export never blocks; Shutdown sends everything.
type otlpBatcher struct {
	exp *otlpExporter
	cfg bspConfig

	mu     sync.Mutex
	enc    otlpEncoder // encodes spans into the groups' buffers
	cur    *encBatch   // being filled; nil when empty
	ready  []*encBatch // full or due, oldest first
	queued int         // spans in cur and ready
	free   []*encBatch // sent, for reuse
	lastID uint64
	// fullSize is the bytes of the last full batch: a new batch's buffer
	// starts that big instead of growing to it.
	fullSize int
	closed   bool

	wake chan struct{} // a batch is ready (buffered: never blocks)
	stop chan struct{}
	done chan struct{}

	sent, failed, queueFull atomic.Uint64
}

// keptBatches is how many sent batches are kept for reuse: the one being
// filled and the one being sent are enough in a steady state.
const keptBatches = 4

func newOTLPBatcher(exp *otlpExporter, cfg bspConfig) *otlpBatcher {
	b := &otlpBatcher{
		exp:  exp,
		cfg:  cfg,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go b.run()
	return b
}

func (b *otlpBatcher) add(pr *process, r spanRecord) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	if b.queued >= b.cfg.maxQueue {
		b.mu.Unlock()
		b.queueFull.Add(1)
		return
	}
	if b.cur == nil {
		b.cur = b.newBatch()
	}
	b.cur.add(&b.enc, pr, &r)
	b.queued++
	full := b.cur.n >= b.cfg.maxBatch
	if full {
		b.fullSize = len(b.cur.spans)
		b.ready = append(b.ready, b.cur)
		b.cur = nil
	}
	b.mu.Unlock()
	if full || b.cfg.delay <= 0 {
		select {
		case b.wake <- struct{}{}:
		default: // the sender is awake already
		}
	}
}

func (b *otlpBatcher) newBatch() *encBatch {
	b.lastID++
	var bt *encBatch
	if n := len(b.free); n > 0 {
		bt, b.free = b.free[n-1], b.free[:n-1]
	} else {
		bt = &encBatch{spans: make([]byte, 0, min(b.fullSize, keptBuffer))}
	}
	bt.reset(b.lastID)
	return bt
}

// run is the sender: full batches as they come, the partial one when the
// delay passes without an export, everything at shutdown.
func (b *otlpBatcher) run() {
	defer close(b.done)
	delay := b.cfg.delay
	if delay <= 0 {
		delay = time.Hour // every add wakes the sender, which sends at once
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-b.stop:
			b.seal()
			b.sendReady()
			return
		case <-timer.C:
			b.seal()
		case <-b.wake:
			if b.cfg.delay <= 0 {
				b.seal()
			}
		}
		b.sendReady()
		timer.Reset(delay) // as the SDK's: the delay counts from the last export
	}
}

// seal moves the batch being filled to the ready ones.
func (b *otlpBatcher) seal() {
	b.mu.Lock()
	if b.cur != nil {
		b.ready = append(b.ready, b.cur)
		b.cur = nil
	}
	b.mu.Unlock()
}

func (b *otlpBatcher) sendReady() {
	for {
		b.mu.Lock()
		if len(b.ready) == 0 {
			b.mu.Unlock()
			return
		}
		bt := b.ready[0]
		b.ready[0] = nil
		b.ready = b.ready[1:]
		b.queued -= bt.n
		b.mu.Unlock()
		b.send(bt)
	}
}

var errExportTimeout = errors.New("processor export timeout")

func (b *otlpBatcher) send(bt *encBatch) {
	ctx := context.Background()
	if b.cfg.exportTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, b.cfg.exportTimeout, errExportTimeout)
		defer cancel()
	}
	if err := b.exp.exportEncoded(ctx, bt.appendRequest); err != nil {
		b.failed.Add(uint64(bt.n))
		otel.Handle(err) // as the SDK's processor reports export errors
	} else {
		b.sent.Add(uint64(bt.n))
	}
	b.mu.Lock()
	if len(b.free) < keptBatches {
		bt.reset(0)
		b.free = append(b.free, bt)
	}
	b.mu.Unlock()
}

// shutdown stops taking spans and sends what is queued; if ctx ends first,
// the export in flight is aborted and the rest fails fast.
func (b *otlpBatcher) shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	var err error
	select {
	case <-b.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if xerr := b.exp.Shutdown(ctx); err == nil {
		err = xerr
	}
	return err
}

func (b *otlpBatcher) counts() sinkCounts {
	return sinkCounts{sent: b.sent.Load(), failed: b.failed.Load(), queueFull: b.queueFull.Load()}
}
