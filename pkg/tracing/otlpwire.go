package tracing

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes OTLP's protobuf directly (opentelemetry/proto/trace/v1
// trace.proto, common.proto, resource.proto), field numbers as named
// below. Writing the wire form in one pass, instead of building the
// generated messages and marshalling them by reflection, is the
// exporter's whole per-span cost: a few appends per field into one
// buffer. The tests decode what it writes with the generated
// ExportTraceServiceRequest.

// Field numbers of the OTLP messages written here.
const (
	tracesDataResourceSpans = 1

	resourceSpansResource   = 1
	resourceSpansScopeSpans = 2
	resourceSpansSchemaURL  = 3
	resourceAttributes      = 1

	scopeSpansScope     = 1
	scopeSpansSpans     = 2
	scopeSpansSchemaURL = 3
	scopeName           = 1
	scopeVersion        = 2
	scopeAttributes     = 3

	spanTraceID                = 1
	spanSpanID                 = 2
	spanTraceState             = 3
	spanParentSpanID           = 4
	spanName                   = 5
	spanKind                   = 6
	spanStartTime              = 7
	spanEndTime                = 8
	spanAttributes             = 9
	spanDroppedAttributesCount = 10
	spanEvents                 = 11
	spanDroppedEventsCount     = 12
	spanLinks                  = 13
	spanDroppedLinksCount      = 14
	spanStatus                 = 15
	spanFlags                  = 16

	eventTime                   = 1
	eventName                   = 2
	eventAttributes             = 3
	eventDroppedAttributesCount = 4

	linkTraceID                = 1
	linkSpanID                 = 2
	linkTraceState             = 3
	linkAttributes             = 4
	linkDroppedAttributesCount = 5
	linkFlags                  = 6

	statusMessage = 2
	statusCode    = 3

	keyValueKey   = 1
	keyValueValue = 2

	anyString = 1
	anyBool   = 2
	anyInt    = 3
	anyDouble = 4
	anyArray  = 5
	anyKVList = 6
	anyBytes  = 7

	arrayValues  = 1
	kvListValues = 1
)

// OTLP enum values.
const (
	// SpanFlags: the context's is-remote bit is known (0x100), and set (0x200).
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200

	// Status codes (the API's are Unset 0, Error 1, Ok 2).
	statusOK    = 1
	statusError = 2
)

// appendTracesData appends the TracesData of spans to b, grouped by
// resource and then by instrumentation scope, in the order first seen.
func appendTracesData(b []byte, spans []sdktrace.ReadOnlySpan) []byte {
	type group struct {
		res   attribute.Distinct
		scope instrumentation.Scope
		spans []sdktrace.ReadOnlySpan
	}
	// A batch is almost always one resource and one scope: a slice
	// searched linearly beats maps.
	var groups []*group
	for _, s := range spans {
		rk, sc := s.Resource().Equivalent(), s.InstrumentationScope()
		var g *group
		for _, x := range groups {
			if x.res == rk && x.scope == sc {
				g = x
				break
			}
		}
		if g == nil {
			g = &group{res: rk, scope: sc}
			groups = append(groups, g)
		}
		g.spans = append(g.spans, s)
	}
	done := make([]bool, len(groups))
	for i, g := range groups {
		if done[i] {
			continue
		}
		rs := beginMessage(&b, tracesDataResourceSpans)
		res := g.spans[0].Resource()
		r := beginMessage(&b, resourceSpansResource)
		b = appendKeyValues(b, resourceAttributes, res.Attributes())
		endMessage(&b, r)
		// Every scope of this resource, in order.
		for j := i; j < len(groups); j++ {
			if done[j] || groups[j].res != g.res {
				continue
			}
			done[j] = true
			sc := groups[j].scope
			ss := beginMessage(&b, resourceSpansScopeSpans)
			scope := beginMessage(&b, scopeSpansScope)
			b = appendString(b, scopeName, sc.Name)
			b = appendString(b, scopeVersion, sc.Version)
			b = appendKeyValues(b, scopeAttributes, sc.Attributes.ToSlice())
			endMessage(&b, scope)
			for _, s := range groups[j].spans {
				m := beginMessage(&b, scopeSpansSpans)
				b = appendSpan(b, s)
				endMessage(&b, m)
			}
			b = appendString(b, scopeSpansSchemaURL, sc.SchemaURL)
			endMessage(&b, ss)
		}
		b = appendString(b, resourceSpansSchemaURL, res.SchemaURL())
		endMessage(&b, rs)
	}
	return b
}

// appendSpan appends the fields of one Span.
func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, spanTraceID, tid[:])
	b = appendBytes(b, spanSpanID, sid[:])
	b = appendString(b, spanTraceState, sc.TraceState().String())
	if p := s.Parent(); p.SpanID().IsValid() {
		pid := p.SpanID()
		b = appendBytes(b, spanParentSpanID, pid[:])
	}
	b = appendString(b, spanName, s.Name())
	b = appendVarint(b, spanKind, uint64(kind(s.SpanKind())))
	b = appendFixed64(b, spanStartTime, unixNano(s.StartTime()))
	b = appendFixed64(b, spanEndTime, unixNano(s.EndTime()))
	b = appendKeyValues(b, spanAttributes, s.Attributes())
	b = appendVarint(b, spanDroppedAttributesCount, uint64(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		m := beginMessage(&b, spanEvents)
		b = appendFixed64(b, eventTime, unixNano(ev.Time))
		b = appendString(b, eventName, ev.Name)
		b = appendKeyValues(b, eventAttributes, ev.Attributes)
		b = appendVarint(b, eventDroppedAttributesCount, uint64(ev.DroppedAttributeCount))
		endMessage(&b, m)
	}
	b = appendVarint(b, spanDroppedEventsCount, uint64(s.DroppedEvents()))
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		m := beginMessage(&b, spanLinks)
		b = appendBytes(b, linkTraceID, ltid[:])
		b = appendBytes(b, linkSpanID, lsid[:])
		b = appendString(b, linkTraceState, l.SpanContext.TraceState().String())
		b = appendKeyValues(b, linkAttributes, l.Attributes)
		b = appendVarint(b, linkDroppedAttributesCount, uint64(l.DroppedAttributeCount))
		b = appendFixed32(b, linkFlags, flags(l.SpanContext.TraceFlags(), l.SpanContext))
		endMessage(&b, m)
	}
	b = appendVarint(b, spanDroppedLinksCount, uint64(s.DroppedLinks()))
	// The status is always written, empty when unset, as the
	// OpenTelemetry exporter does.
	st := beginMessage(&b, spanStatus)
	switch status := s.Status(); status.Code {
	case codes.Error:
		b = appendString(b, statusMessage, status.Description)
		b = appendVarint(b, statusCode, statusError)
	case codes.Ok:
		b = appendVarint(b, statusCode, statusOK)
	}
	endMessage(&b, st)
	return appendFixed32(b, spanFlags, flags(sc.TraceFlags(), s.Parent()))
}

// flags are the W3C trace flags and whether remote (the parent's, or the
// link's context) is remote, as OTLP's SpanFlags.
func flags(tf trace.TraceFlags, remote trace.SpanContext) uint32 {
	f := uint32(tf) | flagHasIsRemote
	if remote.IsRemote() {
		f |= flagIsRemote
	}
	return f
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

// kind maps the API's span kinds to OTLP's (the same numbers, 0 to 5,
// checked rather than assumed).
func kind(k trace.SpanKind) int {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	}
	return 0
}

// appendKeyValues appends each of kvs as a KeyValue in field num.
func appendKeyValues(b []byte, num protowire.Number, kvs []attribute.KeyValue) []byte {
	for _, kv := range kvs {
		m := beginMessage(&b, num)
		b = appendString(b, keyValueKey, string(kv.Key))
		v := beginMessage(&b, keyValueValue)
		b = appendAnyValue(b, kv.Value)
		endMessage(&b, v)
		endMessage(&b, m)
	}
	return b
}

// appendAnyValue appends the fields of the AnyValue of v, every type the
// API has. A oneof member is written even when zero: its presence says
// which member is set.
func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		b = protowire.AppendTag(b, anyBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, anyInt, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = protowire.AppendTag(b, anyDouble, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		b = protowire.AppendTag(b, anyString, protowire.BytesType)
		return protowire.AppendString(b, validUTF8(v.AsString()))
	case attribute.BYTESLICE:
		b = protowire.AppendTag(b, anyBytes, protowire.BytesType)
		return protowire.AppendBytes(b, v.AsByteSlice())
	case attribute.BOOLSLICE:
		return appendArray(b, v.AsBoolSlice(), attribute.BoolValue)
	case attribute.INT64SLICE:
		return appendArray(b, v.AsInt64Slice(), attribute.Int64Value)
	case attribute.FLOAT64SLICE:
		return appendArray(b, v.AsFloat64Slice(), attribute.Float64Value)
	case attribute.STRINGSLICE:
		return appendArray(b, v.AsStringSlice(), attribute.StringValue)
	case attribute.SLICE:
		return appendArray(b, v.AsSlice(), func(x attribute.Value) attribute.Value { return x })
	case attribute.MAP:
		m := beginMessage(&b, anyKVList)
		b = appendKeyValues(b, kvListValues, v.AsMap())
		endMessage(&b, m)
	}
	return b // empty: an AnyValue with no member set
}

func appendArray[T any](b []byte, xs []T, value func(T) attribute.Value) []byte {
	m := beginMessage(&b, anyArray)
	for _, x := range xs {
		e := beginMessage(&b, arrayValues)
		b = appendAnyValue(b, value(x))
		endMessage(&b, e)
	}
	endMessage(&b, m)
	return b
}

// appendString appends a non-empty string field. Protobuf strings must be
// UTF-8, and a collector refuses a whole request that holds one that is
// not: invalid bytes (a percent-decoded path, a client's header) become
// U+FFFD, so no span's text can cost the batch.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, validUTF8(s))
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// appendBytes appends a non-empty bytes field.
func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendVarint appends a non-zero varint field.
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendFixed64 appends a non-zero fixed64 field.
func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

// appendFixed32 appends a non-zero fixed32 field.
func appendFixed32(b []byte, num protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}

// beginMessage appends the tag of an embedded message in field num and
// one byte reserved for its length, and returns where its contents start,
// for endMessage.
func beginMessage(b *[]byte, num protowire.Number) int {
	*b = protowire.AppendTag(*b, num, protowire.BytesType)
	*b = append(*b, 0)
	return len(*b)
}

// endMessage writes the length of the message begun at start. A length
// above 127 needs more than the reserved byte: the contents move up.
func endMessage(b *[]byte, start int) {
	n := len(*b) - start
	if n < 0x80 {
		(*b)[start-1] = byte(n)
		return
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	*b = append(*b, make([]byte, extra)...)
	copy((*b)[start+extra:], (*b)[start:start+n])
	protowire.AppendVarint((*b)[:start-1], uint64(n))
}
