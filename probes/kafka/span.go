package kafka

import (
	"strconv"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// emitProduce reports one PRODUCER span per topic of a produce request.
// The kernel's ids (the ones it injects as the records' traceparent when it
// does, which it only does for one-topic requests) go to the first topic's
// span; others get their own ids under the same parent.
func (p *parser) emitProduce(req *pending, end time.Time) {
	for i := range req.produce.topics {
		t := &req.produce.topics[i]
		var recs recordsInfo
		code := int16(0)
		for j := range t.parts {
			pp := &t.parts[j]
			recs.merge(&pp.records)
			if pp.answered && pp.errCode != 0 && code == 0 {
				code = pp.errCode
			}
		}
		sp := p.span(trace.SpanKindProducer, "send", semconv.MessagingOperationTypeSend, t.key, req, end)
		if len(t.parts) == 1 {
			pp := &t.parts[0]
			sp.Attrs = append(sp.Attrs, semconv.MessagingDestinationPartitionID(strconv.Itoa(int(pp.index))))
			if pp.answered && pp.errCode == 0 && pp.offset >= 0 {
				sp.Attrs = append(sp.Attrs, semconv.MessagingKafkaOffset(int(pp.offset)))
			}
		}
		sp.Parent = req.from.parent
		if i == 0 {
			sp.SpanContext = req.from.ctx
		}
		p.finish(&sp, &recs, code)
	}
}

// emitFetch reports one CONSUMER span per topic that returned records.
func (p *parser) emitFetch(req *pending, topics []fetchTopic, topErr int16, end time.Time) {
	for i := range topics {
		t := &topics[i]
		var recs recordsInfo
		code := topErr
		var withRecs []*fetchPart
		for j := range t.parts {
			fp := &t.parts[j]
			if fp.records.count > 0 {
				recs.merge(&fp.records)
				withRecs = append(withRecs, fp)
			}
			if fp.errCode != 0 && code == 0 {
				code = fp.errCode
			}
		}
		if recs.count == 0 {
			continue
		}
		sp := p.span(trace.SpanKindConsumer, "receive", semconv.MessagingOperationTypeReceive, t.key, req, end)
		if len(withRecs) == 1 {
			fp := withRecs[0]
			sp.Attrs = append(sp.Attrs,
				semconv.MessagingDestinationPartitionID(strconv.Itoa(int(fp.index))),
				semconv.MessagingKafkaOffset(int(fp.records.firstOffset)))
		}
		if g := p.consumerGroup(); g != "" {
			sp.Attrs = append(sp.Attrs, semconv.MessagingConsumerGroupName(g))
		}
		p.finish(&sp, &recs, code)
	}
}

// span starts a span with the attributes every Kafka span has.
func (p *parser) span(kind trace.SpanKind, op string, opType attribute.KeyValue, k topicKey, req *pending, end time.Time) probe.Span {
	name, known := p.topicName(k)
	sp := probe.Span{
		PID: p.conn.PID, TID: req.from.tid, Kind: kind,
		Name: op, Start: req.from.start, End: end,
	}
	if end.Before(sp.Start) {
		sp.End = sp.Start
	}
	sp.Attrs = append(sp.Attrs,
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationName(op),
		opType,
	)
	if known {
		sp.Name = op + " " + name
		sp.Attrs = append(sp.Attrs, semconv.MessagingDestinationName(name))
	}
	if p.clientID != "" {
		sp.Attrs = append(sp.Attrs, semconv.MessagingClientID(p.clientID))
	}
	if r := p.conn.Remote; r.IsValid() {
		sp.Attrs = append(sp.Attrs, semconv.ServerAddress(r.Addr().Unmap().String()), semconv.ServerPort(int(r.Port())))
	}
	return sp
}

// finish adds counts, producer contexts and errors, and queues the span.
// The creation context of the messages becomes the parent (unless the
// kernel gave one) when it is the only one and every message carries it
// (one message, or a batch one producer call sent); otherwise contexts
// become links.
func (p *parser) finish(sp *probe.Span, recs *recordsInfo, code int16) {
	if recs.count > 1 {
		sp.Attrs = append(sp.Attrs, semconv.MessagingBatchMessageCount(recs.count))
	}
	ctxs := recs.contexts
	if recs.perRecord == recs.count && len(ctxs) == 1 && !sp.Parent.IsValid() && !ctxs[0].Equal(sp.SpanContext) {
		sp.Parent = ctxs[0]
		ctxs = nil
	}
	for _, c := range ctxs {
		if !c.Equal(sp.SpanContext) && !c.Equal(sp.Parent) {
			sp.Links = append(sp.Links, c)
		}
	}
	if code != 0 {
		sp.Error = true
		sp.Attrs = append(sp.Attrs, semconv.ErrorTypeKey.String(errorName(code)))
	}
	p.out = append(p.out, *sp)
}

func (p *parser) topicName(k topicKey) (string, bool) {
	if k.id == ([16]byte{}) {
		return k.name, k.name != ""
	}
	return p.shared.topicName(k.id)
}

func (p *parser) consumerGroup() string {
	if p.group != "" {
		return p.group
	}
	if p.clientID == "" {
		return ""
	}
	return p.shared.group(clientKey{p.conn.PID, p.clientID})
}

// merge adds another partition's records.
func (ri *recordsInfo) merge(o *recordsInfo) {
	if o.count == 0 {
		return
	}
	if !ri.haveOffset && o.haveOffset {
		ri.firstOffset, ri.haveOffset = o.firstOffset, true
	}
	ri.count += o.count
	ri.perRecord += o.perRecord
	for _, c := range o.contexts {
		dup := false
		for _, h := range ri.contexts {
			if h.Equal(c) {
				dup = true
				break
			}
		}
		if !dup && len(ri.contexts) < maxLinks {
			ri.contexts = append(ri.contexts, c)
		}
	}
}
