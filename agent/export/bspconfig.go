package export

import (
	"strconv"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// bspConfig is the batching of the OTLP protobuf output, from the same
// OTEL_BSP_* variables and with the same effective values as the SDK's
// batch processor that the other outputs use (NewBatchSpanProcessor plus
// newPipeline's queue default).
type bspConfig struct {
	maxQueue      int           // spans waiting, beyond which new ones are dropped
	maxBatch      int           // spans per request
	delay         time.Duration // longest a span waits for its batch to fill
	exportTimeout time.Duration // per request, retries included; ≤ 0: none
}

func bspConfigFromEnv(getenv func(string) string) bspConfig {
	// The SDK reads integers with strconv.Atoi; anything else is its default.
	num := func(key string, def int) int {
		if v, err := strconv.Atoi(getenv(key)); err == nil {
			return v
		}
		return def
	}
	queue := num("OTEL_BSP_MAX_QUEUE_SIZE", sdktrace.DefaultMaxQueueSize)
	batch := num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", sdktrace.DefaultMaxExportBatchSize)
	if batch > queue {
		// The SDK compares with the queue size from the environment (or its
		// own default) before newPipeline's default replaces the latter.
		batch = min(sdktrace.DefaultMaxExportBatchSize, queue)
	}
	if getenv("OTEL_BSP_MAX_QUEUE_SIZE") == "" {
		queue = defaultQueueSize
	}
	return bspConfig{
		// The SDK's queue is a channel: a size below 1 drops almost every
		// span; a batch below 1 sends each span alone. Both are taken as 1.
		maxQueue:      max(queue, 1),
		maxBatch:      max(batch, 1),
		delay:         time.Duration(num("OTEL_BSP_SCHEDULE_DELAY", sdktrace.DefaultScheduleDelay)) * time.Millisecond,
		exportTimeout: time.Duration(num("OTEL_BSP_EXPORT_TIMEOUT", sdktrace.DefaultExportTimeout)) * time.Millisecond,
	}
}
