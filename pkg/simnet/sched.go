package simnet

import (
	"container/heap"
	"sync"
	"time"
)

// maxQueued bounds the packets one scheduler holds; beyond it new packets
// are dropped, like a router's full queue.
const maxQueued = 1 << 16

// item is one payload due at a time; seq keeps equal times in send order.
type item[T any] struct {
	due time.Time
	seq uint64
	v   T
}

type itemHeap[T any] []item[T]

func (h itemHeap[T]) Len() int { return len(h) }
func (h itemHeap[T]) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h itemHeap[T]) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap[T]) Push(x any)   { *h = append(*h, x.(item[T])) }
func (h *itemHeap[T]) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = item[T]{}
	*h = old[:len(old)-1]
	return x
}

// scheduler delivers payloads at their due times from one goroutine, with
// one timer. deliver receives every payload that is due, in due order; it
// runs on the scheduler goroutine and must not call push.
type scheduler[T any] struct {
	deliver func([]T)
	lead    *lead         // shared with the Network's other waits
	wake    chan struct{} // capacity 1: "the earliest due time changed"
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu      sync.Mutex // guards the following
	pending itemHeap[T]
	seq     uint64
	closed  bool
}

// newScheduler starts a scheduler goroutine; close stops it.
func newScheduler[T any](deliver func([]T), ld *lead) *scheduler[T] {
	s := &scheduler[T]{
		deliver: deliver,
		lead:    ld,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.run()
	return s
}

// push queues v for delivery at due. It never blocks on the delay; it
// reports false when the queue is full or the scheduler is closed (v is
// dropped).
func (s *scheduler[T]) push(due time.Time, v T) bool {
	s.mu.Lock()
	if s.closed || len(s.pending) >= maxQueued {
		s.mu.Unlock()
		return false
	}
	s.seq++
	heap.Push(&s.pending, item[T]{due: due, seq: s.seq, v: v})
	first := s.pending[0].seq == s.seq
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// close stops the goroutine, drops what is pending and waits. It is
// idempotent.
func (s *scheduler[T]) close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
	})
	<-s.done
}

// run delivers due payloads from one goroutine.
func (s *scheduler[T]) run() {
	defer close(s.done)
	timer := newFineTimer()
	defer timer.Close()
	var due []T
	timed := false // woken by the timer: the first delivery measures the lead
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		due = due[:0]
		now := time.Now()
		early := s.lead.get()
		var first time.Time
		s.mu.Lock()
		for len(s.pending) > 0 && !s.pending[0].due.After(now.Add(early)) {
			it := heap.Pop(&s.pending).(item[T])
			if first.IsZero() {
				first = it.due
			}
			due = append(due, it.v)
		}
		wait := time.Hour
		if len(s.pending) > 0 {
			wait = s.pending[0].due.Sub(now) - early
		}
		s.mu.Unlock()
		if len(due) > 0 {
			if timed {
				s.lead.observe(now.Sub(first))
			}
			timed = false
			s.deliver(due)
			clear(due)
			continue // delivery took time: look again before sleeping
		}
		timer.Reset(wait)
		select {
		case <-s.stop:
			return
		case <-s.wake:
			timed = false
		case <-timer.C():
			timed = true
		}
	}
}
