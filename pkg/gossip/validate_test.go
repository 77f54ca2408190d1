package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/postern/postern/pkg/authority"
)

// nodeWithMeta returns a memberlist node for c's address carrying m.
func nodeWithMeta(tb testing.TB, c *Cluster, m Meta) *memberlist.Node {
	tb.Helper()
	b, err := encodeSignedMeta(testIdentity(tb, m.ID, m.Region), m)
	if err != nil {
		tb.Fatal(err)
	}
	ln := c.ml.LocalNode()
	return &memberlist.Node{Name: m.ID, Addr: ln.Addr, Port: ln.Port, Meta: b}
}

func TestNewRejects(t *testing.T) {
	base := func() Config {
		return Config{Meta: Meta{ID: "n", Region: "r"}, Identity: testIdentity(t, "n", "r"), Verifier: testAuthority(t),
			BindAddr: "127.0.0.1:0", Keys: [][]byte{testKey}, Timing: LocalTiming(), Logger: slog.New(slog.DiscardHandler)}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want error
	}{
		{"no keys", func(c *Config) { c.Keys = nil }, ErrInvalidConfig},
		{"short key", func(c *Config) { c.Keys = [][]byte{[]byte("short")} }, ErrInvalidConfig},
		{"no id", func(c *Config) { c.Meta.ID = "" }, ErrInvalidArgument},
		{"no region", func(c *Config) { c.Meta.Region = "" }, ErrInvalidArgument},
		{"id of another credential", func(c *Config) { c.Meta.ID = "other" }, ErrInvalidArgument},
		{"no credential", func(c *Config) { c.Identity = Identity{} }, ErrInvalidConfig},
		{"no verifier", func(c *Config) { c.Verifier = nil }, ErrInvalidConfig},
		{"another node's key", func(c *Config) { c.Identity.Key = testIdentity(t, "m", "r").Key }, ErrInvalidConfig},
		{"credential of another authority", func(c *Config) {
			k, _ := authority.GenerateKey()
			a, _ := authority.New(authority.Config{Key: k})
			c.Verifier = a
		}, ErrInvalidConfig},
		{"meta too large", func(c *Config) { c.Meta.Version = strings.Repeat("v", 600) }, ErrMetaTooLarge},
		{"bad bind", func(c *Config) { c.BindAddr = "nope" }, ErrInvalidConfig},
		{"bad timing", func(c *Config) { c.Timing.ProbeTimeout = time.Hour }, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			tt.mod(&cfg)
			c, err := New(cfg)
			if err == nil {
				c.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if bytes.Contains([]byte(err.Error()), testKey) {
				t.Errorf("error contains the key")
			}
		})
	}
}

func TestUpdateMetaRejects(t *testing.T) {
	a := newNode(t, "a", nil)
	tests := []struct {
		name string
		f    func(*Meta)
		want error
	}{
		{"id change", func(m *Meta) { m.ID = "z" }, ErrInvalidArgument},
		{"region change", func(m *Meta) { m.Region = "elsewhere" }, ErrInvalidArgument},
		{"key change", func(m *Meta) { m.WGKey[0]++ }, ErrInvalidArgument},
		{"boot change", func(m *Meta) { m.Boot++ }, ErrInvalidArgument},
		{"too large", func(m *Meta) { m.PublicURL = strings.Repeat("u", 600) }, ErrMetaTooLarge},
		{"negative load", func(m *Meta) { m.Load = -1 }, ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := member(a, "a")
			if err := a.UpdateMeta(tt.f); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if after, _ := member(a, "a"); after.Meta != before.Meta || after.State != before.State {
				t.Errorf("meta changed: got %+v, want %+v", after, before)
			}
		})
	}
}

func TestSetAttachmentsRejects(t *testing.T) {
	a := newNode(t, "a", nil)
	if err := a.SetAttachments([]Attachment{{Connector: "keep"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []Attachment
	}{
		{"empty connector", []Attachment{{Connector: ""}}},
		{"long connector", []Attachment{{Connector: strings.Repeat("c", 129)}}},
		{"duplicate", []Attachment{{Connector: "x"}, {Connector: "x"}}},
		{"negative rtt", []Attachment{{Connector: "x", RTT: -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.SetAttachments(tt.in); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("got %v, want ErrInvalidArgument", err)
			}
			if got := a.Attachments(); len(got) != 1 || got[0].Connector != "keep" {
				t.Errorf("attachments changed: got %v, want [keep]", got)
			}
		})
	}
}

func TestMetaRoundTrip(t *testing.T) {
	c := newNode(t, "a", nil)
	id := testIdentity(t, "mesh-eu-west-1-a", "eu-west-1")
	m := Meta{ID: "mesh-eu-west-1-a", Region: "eu-west-1", WGEndpoint: "198.51.100.100:51820",
		PublicURL: "https://mesh-eu-west-1-a.postern.example.com:443", Load: 1234, Version: "1.2.3",
		Boot: time.Now().UnixNano(), Draining: true, WGKey: id.Credential.WGKey}
	b, err := encodeSignedMeta(id, m)
	if err != nil {
		t.Fatal(err)
	}
	got, cred, err := c.decodeMeta(b)
	if err != nil || got != m || cred.NodeID != m.ID {
		t.Fatalf("got (%+v, %v), want %+v", got, err, m)
	}
	t.Logf("encoded signed meta with a realistic URL: %d bytes of %d", len(b), memberlist.MetaMaxSize)
}

func TestMetaRefusesForgeries(t *testing.T) {
	c := newNode(t, "a", nil)
	id := testIdentity(t, "b", "region-b")
	m := Meta{ID: "b", Region: "region-b", PublicURL: "https://b.example", Boot: 1}
	good, err := encodeSignedMeta(id, m)
	if err != nil {
		t.Fatal(err)
	}
	other := testIdentity(t, "x", "region-b")
	stolen := Identity{Credential: id.Credential, Key: other.Key} // someone else's credential, own key
	forged, _ := encodeSignedMeta(stolen, m)
	plain, _ := encodeMetaBody(m)
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-metaSigLen-3] ^= 1 // inside the JSON body
	tests := map[string][]byte{
		"no credential (keyring only)":   plain,
		"stolen credential, another key": forged,
		"body changed after signing":     flipped,
		"truncated":                      good[:len(good)-1],
		"empty":                          nil,
	}
	for name, b := range tests {
		if _, _, err := c.decodeMeta(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := (&delegate{c: c}).NotifyAlive(&memberlist.Node{Name: "b", Meta: b}); err == nil {
			t.Errorf("%s: NotifyAlive accepted", name)
		}
	}
	if err := (&delegate{c: c}).NotifyAlive(&memberlist.Node{Name: "b", Meta: good}); err != nil {
		t.Errorf("the genuine meta: %v", err)
	}
	if err := (&delegate{c: c}).NotifyAlive(&memberlist.Node{Name: "c", Meta: good}); err == nil {
		t.Error("b's meta under another name was accepted")
	}
}

// maxEntry is the largest attachment entry that SetAttachments accepts.
func maxEntry() wireAttach {
	return wireAttach{Node: strings.Repeat("n", maxIDLen), Connector: strings.Repeat("c", maxIDLen),
		Group: strings.Repeat("g", maxIDLen), Boot: 1 << 62, Version: 1 << 62, RTT: 1 << 62, InFlight: 1 << 40,
		Alive: true, Draining: true, Deleted: true}
}

func TestBroadcastSize(t *testing.T) {
	msg, err := encodeMsg(kindAttachment, maxEntry())
	if err != nil {
		t.Fatal(err)
	}
	if len(msg) > maxMessageBytes {
		t.Errorf("largest attachment broadcast: got %d bytes, want ≤ %d", len(msg), maxMessageBytes)
	}
	t.Logf("largest attachment broadcast: %d bytes", len(msg))
}

func TestManyAttachmentsByPushPull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mn memNet
		a := newNode(t, "a", nil, mn.opt(t))
		own := make([]Attachment, 5000)
		for i := range own {
			own[i] = Attachment{Connector: fmt.Sprintf("connector-%05d", i), Group: "group-" + fmt.Sprint(i%7),
				Alive: true, RTT: time.Duration(i) * time.Microsecond}
		}
		if err := a.SetAttachments(own); err != nil {
			t.Fatal(err)
		}
		// Every queued broadcast fits a packet.
		var largest int
		for _, m := range a.queue.GetBroadcasts(0, 1<<20) {
			if len(m) > maxMessageBytes {
				t.Fatalf("broadcast of %d bytes, want ≤ %d", len(m), maxMessageBytes)
			}
			largest = max(largest, len(m))
		}
		t.Logf("5000 queued attachment broadcasts, largest %d bytes", largest)
		a.queue.Reset() // only push-pull may carry them now
		b := newNode(t, "b", []string{a.Addr()}, mn.opt(t))
		took := waitFor(t, waitLong, "b sees 5000", func() bool { return len(b.Attachments()) == 5000 })
		t.Logf("5000 attachments converged by push-pull in %v", took)
	})
}
