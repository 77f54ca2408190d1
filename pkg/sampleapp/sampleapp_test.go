package sampleapp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newServer starts the sample app on 127.0.0.1 and returns its base URL.
func newServer(tb testing.TB, cfg Config) string {
	tb.Helper()
	srv := httptest.NewServer(New(cfg).Handler())
	tb.Cleanup(srv.Close)
	return srv.URL
}

// get performs a GET of url and returns the response with its body read.
func get(tb testing.TB, url string, header http.Header) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, url, nil)
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp, string(body)
}

func TestIndex(t *testing.T) {
	base := newServer(t, Config{})
	resp, body := get(t, base+"/?q=<b>", http.Header{
		"X-Postern-User":  {`<script>alert("x")</script>`},
		"X-Forwarded-For": {"203.0.113.7"},
		"X-Other":         {"plain & simple"},
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
	}
	if got, want := resp.Header.Get("Content-Type"), "text/html; charset=utf-8"; got != want {
		t.Errorf("content type: got %q, want %q", got, want)
	}
	for _, want := range []string{
		"<title>SmartMoney (sample internal app)</title>",
		`<tr class="identity"><td>X-Postern-User</td><td>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td></tr>`,
		`<tr class="identity"><td>X-Forwarded-For</td><td>203.0.113.7</td></tr>`,
		`<tr><td>X-Other</td><td>plain &amp; simple</td></tr>`,
		"GET /?q=&lt;b&gt; HTTP/1.1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("index page does not contain %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Errorf("index page contains an unescaped <script> tag:\n%s", body)
	}
}

func TestIndexName(t *testing.T) {
	base := newServer(t, Config{Name: "Payroll <test>"})
	_, body := get(t, base+"/", nil)
	if want := "<h1>Payroll &lt;test&gt; (sample internal app)</h1>"; !strings.Contains(body, want) {
		t.Errorf("index page does not contain %q:\n%s", want, body)
	}
}

// TestAdmin: /admin and below answer 200 with the admin area page naming
// the user the mesh sent, escaped.
func TestAdmin(t *testing.T) {
	base := newServer(t, Config{Name: "SmartMoney"})
	for _, path := range []string{"/admin", "/admin/", "/admin/users"} {
		resp, body := get(t, base+path, http.Header{"X-Postern-Name": {"Bob <b>"}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Admin area of SmartMoney") ||
			!strings.Contains(body, "Bob &lt;b&gt;") {
			t.Errorf("%s: got %d %q, want the admin page for Bob escaped", path, resp.StatusCode, body)
		}
	}
}

func TestUnknownPath(t *testing.T) {
	base := newServer(t, Config{})
	for _, path := range []string{"/nope", "/hello/x", "/status/", "/administrator"} {
		t.Run(path, func(t *testing.T) {
			resp, _ := get(t, base+path, nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusNotFound)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	base := newServer(t, Config{Name: "app-a"})
	resp, body := get(t, base+"/headers?a=1&b=two", http.Header{"X-Postern-User": {"alice"}})
	if got, want := resp.Header.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("content type: got %q, want %q", got, want)
	}
	var info RequestInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	host := strings.TrimPrefix(base, "http://")
	if info.RemoteAddr == "" || !strings.HasPrefix(info.RemoteAddr, "127.0.0.1:") {
		t.Errorf("remote_addr: got %q, want 127.0.0.1:port", info.RemoteAddr)
	}
	info.RemoteAddr = ""
	want := RequestInfo{
		App:      "app-a",
		Method:   "GET",
		Host:     host,
		Path:     "/headers",
		RawQuery: "a=1&b=two",
		Proto:    "HTTP/1.1",
		Headers: map[string][]string{
			"Accept-Encoding": {"gzip"},
			"User-Agent":      {"Go-http-client/1.1"},
			"X-Postern-User":  {"alice"},
		},
	}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("/headers mismatch (-want +got):\n%s", diff)
	}
	// The JSON keys are part of the contract with tests and the demo.
	for _, key := range []string{`"method"`, `"host"`, `"path"`, `"raw_query"`, `"remote_addr"`, `"headers"`, `"proto"`} {
		if !strings.Contains(body, key) {
			t.Errorf("/headers JSON lacks key %s: %s", key, body)
		}
	}
}

func TestPlainRoutes(t *testing.T) {
	base := newServer(t, Config{})
	tests := []struct {
		path string
		want string
	}{
		{"/hello", "hello\n"},
		{"/healthz", "ok\n"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := get(t, base+tt.path, nil)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
			}
			if body != tt.want {
				t.Errorf("body: got %q, want %q", body, tt.want)
			}
			if got, want := resp.Header.Get("Content-Type"), "text/plain; charset=utf-8"; got != want {
				t.Errorf("content type: got %q, want %q", got, want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	base := newServer(t, Config{})
	tests := []struct {
		code string
		want int
	}{
		{"200", 200},
		{"201", 201},
		{"204", 204},
		{"302", 302},
		{"404", 404},
		{"418", 418},
		{"503", 503},
		{"599", 599},
		{"abc", 400},
		{"99", 400},
		{"100", 400},
		{"600", 400},
		{"-200", 400},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			resp, err := client.Get(base + "/status/" + tt.code)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestSlow(t *testing.T) {
	base := newServer(t, Config{})
	tests := []struct {
		query  string
		status int
		body   string
	}{
		{"?delay=10ms", 200, "ok\n"},
		{"?delay=0s", 200, "ok\n"},
		{"?delay=abc", 400, ""},
		{"?delay=-1s", 400, ""},
		{"?delay=11m", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := get(t, base+"/slow"+tt.query, nil)
			if resp.StatusCode != tt.status {
				t.Errorf("status: got %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.status == 200 && body != tt.body {
				t.Errorf("body: got %q, want %q", body, tt.body)
			}
		})
	}
}

func TestSlowRespectsContext(t *testing.T) {
	app := New(Config{})
	ctx, cancel := context.WithCancel(t.Context())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/slow?delay=5m", nil)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		app.ServeHTTP(rec, req)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not return after its request context was cancelled")
	}
	if rec.Body.Len() != 0 {
		t.Errorf("body after cancel: got %q, want empty", rec.Body.String())
	}
}

func TestBadQueryMessage(t *testing.T) {
	base := newServer(t, Config{})
	resp, body := get(t, base+"/sse?n=lots", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusBadRequest)
	}
	if got, want := resp.Header.Get("Content-Type"), "text/plain; charset=utf-8"; got != want {
		t.Errorf("content type: got %q, want %q", got, want)
	}
	if want := `query parameter "n" must be an integer from 1 to ` + strconv.Itoa(MaxEvents); !strings.Contains(body, want) {
		t.Errorf("body: got %q, want it to contain %q", body, want)
	}
}

// sha256Hex returns the hex SHA-256 digest of everything r yields.
func sha256Hex(tb testing.TB, r io.Reader) (string, int64) {
	tb.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		tb.Fatalf("hash: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

func TestDownload(t *testing.T) {
	base := newServer(t, Config{})
	tests := []struct {
		bytes   int64
		seed    uint64
		chunked bool
	}{
		{0, 0, false},
		{1, 0, false},
		{chunkSize, 1, false},
		{3*chunkSize + 7, 2, false},
		{1 << 20, 18446744073709551615, false},
		{10, 3, true},
		{3*chunkSize + 7, 3, true},
	}
	for _, tt := range tests {
		url := base + "/download?bytes=" + strconv.FormatInt(tt.bytes, 10) + "&seed=" + strconv.FormatUint(tt.seed, 10)
		if tt.chunked {
			url += "&chunked=1"
		}
		t.Run(strings.TrimPrefix(url, base), func(t *testing.T) {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
			}
			wantLen := tt.bytes
			if tt.chunked {
				wantLen = -1
				if got, want := resp.TransferEncoding, []string{"chunked"}; !cmp.Equal(got, want) {
					t.Errorf("transfer encoding: got %v, want %v", got, want)
				}
			}
			if resp.ContentLength != wantLen {
				t.Errorf("content length: got %d, want %d", resp.ContentLength, wantLen)
			}
			got, n := sha256Hex(t, resp.Body)
			want, _ := sha256Hex(t, Stream(tt.seed, tt.bytes))
			if n != tt.bytes {
				t.Errorf("body length: got %d, want %d", n, tt.bytes)
			}
			if got != want {
				t.Errorf("body sha256: got %s, want %s", got, want)
			}
		})
	}
}

func TestDownloadHeadAtCap(t *testing.T) {
	base := newServer(t, Config{})
	resp, err := http.Head(base + "/download?bytes=" + strconv.Itoa(MaxDownload))
	if err != nil {
		t.Fatalf("HEAD: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
	}
	if resp.ContentLength != MaxDownload {
		t.Errorf("content length: got %d, want %d", resp.ContentLength, int64(MaxDownload))
	}
}

func TestDownloadBadQuery(t *testing.T) {
	base := newServer(t, Config{})
	for _, q := range []string{
		"",
		"?seed=1",
		"?bytes=",
		"?bytes=-1",
		"?bytes=abc",
		"?bytes=1.5",
		"?bytes=" + strconv.Itoa(MaxDownload+1),
		"?bytes=10&seed=-1",
		"?bytes=10&seed=x",
		"?bytes=10&chunked=maybe",
	} {
		t.Run(q, func(t *testing.T) {
			resp, body := get(t, base+"/download"+q, nil)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status: got %d, want %d (body %q)", resp.StatusCode, http.StatusBadRequest, body)
			}
			if !strings.Contains(body, "query parameter") {
				t.Errorf("body: got %q, want a message naming the query parameter", body)
			}
		})
	}
}

func TestUpload(t *testing.T) {
	base := newServer(t, Config{})
	for _, size := range []int64{0, 1, chunkSize - 1, 3<<20 + 5} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			// An io.Reader without a known length makes the client stream
			// the body with chunked encoding.
			body := io.MultiReader(Stream(9, size))
			resp, err := http.Post(base+"/upload", "application/octet-stream", body)
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
			}
			var got UploadResult
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			sum, _ := sha256Hex(t, Stream(9, size))
			want := UploadResult{Bytes: size, SHA256: sum}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestUploadMethod(t *testing.T) {
	base := newServer(t, Config{})
	resp, _ := get(t, base+"/upload", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusMethodNotAllowed)
	}
}

func TestStreamKnownAnswer(t *testing.T) {
	// Seed 0 is AES-128 with the all-zero key; the first keystream block is
	// the encryption of the zero block, a well-known test vector.
	got := make([]byte, 16)
	if _, err := io.ReadFull(Stream(0, 16), got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if got, want := hex.EncodeToString(got), "66e94bd4ef8a2c3b884cfa59ca342b2e"; got != want {
		t.Errorf("first block: got %s, want %s", got, want)
	}
}

func TestStreamChunkingIndependent(t *testing.T) {
	const n = 5*chunkSize + 123
	whole, err := io.ReadAll(Stream(42, n))
	if err != nil {
		t.Fatalf("read all: %v", err)
	}
	if len(whole) != n {
		t.Fatalf("length: got %d, want %d", len(whole), n)
	}
	// Odd read sizes must yield the same bytes as WriteTo's chunks.
	s := Stream(42, n)
	var pieces []byte
	sizes := []int{1, 7, 16, 100, 4099, chunkSize + 1}
	buf := make([]byte, chunkSize+1)
	for i := 0; ; i++ {
		m, err := s.Read(buf[:sizes[i%len(sizes)]])
		pieces = append(pieces, buf[:m]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	if !bytes.Equal(whole, pieces) {
		t.Errorf("chunked reads differ from a whole read")
	}
	other, _ := io.ReadAll(Stream(43, n))
	if bytes.Equal(whole, other) {
		t.Errorf("seeds 42 and 43 produced the same stream")
	}
	if got, _ := io.ReadAll(Stream(1, -5)); len(got) != 0 {
		t.Errorf("negative length: got %d bytes, want 0", len(got))
	}
}

func TestEvents(t *testing.T) {
	base := newServer(t, Config{})
	const n = 3
	resp, err := http.Get(base + "/sse?n=3&interval=150ms")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	if got, want := resp.Header.Get("Content-Type"), "text/event-stream"; got != want {
		t.Errorf("content type: got %q, want %q", got, want)
	}
	var (
		firstArrival time.Time
		sent         []time.Time
	)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if len(sent) == 0 {
			firstArrival = time.Now()
		}
		var i int
		var ns int64
		fields := strings.Fields(strings.TrimPrefix(line, "data: "))
		if !strings.HasPrefix(line, "data: ") || len(fields) != 2 {
			t.Fatalf("event line: got %q, want \"data: <i> <unix-nano>\"", line)
		}
		i, err1 := strconv.Atoi(fields[0])
		ns, err2 := strconv.ParseInt(fields[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("event line %q: bad numbers", line)
		}
		if i != len(sent) {
			t.Errorf("event index: got %d, want %d", i, len(sent))
		}
		sent = append(sent, time.Unix(0, ns))
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read events: %v", err)
	}
	if len(sent) != n {
		t.Fatalf("events: got %d, want %d", len(sent), n)
	}
	// Without a flush per event the first one would only arrive with the
	// last, after it was sent.
	if last := sent[n-1]; !firstArrival.Before(last) {
		t.Errorf("first event arrived at %v, not before the last was sent at %v", firstArrival, last)
	}
	for i := 1; i < n; i++ {
		if sent[i].Before(sent[i-1]) {
			t.Errorf("event %d sent at %v, before event %d at %v", i, sent[i], i-1, sent[i-1])
		}
	}
}

func TestEventsBadQuery(t *testing.T) {
	base := newServer(t, Config{})
	for _, q := range []string{"?n=0", "?n=-1", "?n=x", "?n=10001", "?interval=x", "?interval=-1s", "?interval=2m"} {
		t.Run(q, func(t *testing.T) {
			resp, _ := get(t, base+"/sse"+q, nil)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status: got %d, want %d", resp.StatusCode, http.StatusBadRequest)
			}
		})
	}
}

func BenchmarkHello(b *testing.B) {
	app := New(Config{})
	req := httptest.NewRequest(http.MethodGet, "/hello", nil)
	b.ReportAllocs()
	for b.Loop() {
		app.ServeHTTP(discardWriter{h: http.Header{}}, req)
	}
}

// discardWriter is a ResponseWriter that drops everything.
type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header         { return w.h }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}

func BenchmarkStream(b *testing.B) {
	b.SetBytes(1 << 20)
	for b.Loop() {
		io.Copy(io.Discard, Stream(1, 1<<20))
	}
}

func TestEcho(t *testing.T) {
	base := newServer(t, Config{})
	for _, size := range []int64{0, 1, 4 << 10, 64<<10 + 3, MaxEcho} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			resp, err := http.Post(base+"/echo", "application/octet-stream", Stream(5, size))
			if err != nil {
				t.Fatalf("POST: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, http.StatusOK)
			}
			if resp.ContentLength != size {
				t.Errorf("Content-Length: got %d, want %d", resp.ContentLength, size)
			}
			got, n := sha256Hex(t, resp.Body)
			want, _ := sha256Hex(t, Stream(5, size))
			if n != size || got != want {
				t.Errorf("echo: got %d bytes %s, want %d bytes %s", n, got, size, want)
			}
		})
	}
	resp, err := http.Post(base+"/echo", "application/octet-stream", Stream(5, MaxEcho+1))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: got %d, want %d", resp.StatusCode, http.StatusRequestEntityTooLarge)
	}
}

// TestEchoDuplex checks that /echo?duplex=1 answers each piece while the
// request is still being sent: the client writes the next piece only after
// it has read the previous one back.
func TestEchoDuplex(t *testing.T) {
	base := newServer(t, Config{})
	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/echo?duplex=1", pr)
	req.ContentLength = 3 * 1000
	type reply struct {
		resp *http.Response
		err  error
	}
	got := make(chan reply, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		got <- reply{resp, err}
	}()
	piece := bytes.Repeat([]byte("x"), 1000)
	pw.Write(piece)
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.resp.Body.Close()
	buf := make([]byte, 1000)
	for i := range 3 {
		if i > 0 {
			pw.Write(piece)
		}
		if _, err := io.ReadFull(r.resp.Body, buf); err != nil || !bytes.Equal(buf, piece) {
			t.Fatalf("piece %d: got %q, %v", i, buf[:10], err)
		}
	}
	pw.Close()
	if n, err := io.Copy(io.Discard, r.resp.Body); n != 0 || err != nil {
		t.Errorf("after the body: got %d more bytes, %v", n, err)
	}
}
