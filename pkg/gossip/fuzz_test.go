package gossip

import (
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func FuzzRemoteInput(f *testing.F) {
	c, err := New(Config{Meta: Meta{ID: "f", Region: "r"}, Identity: testIdentity(f, "f", "r"), Verifier: testAuthority(f),
		BindAddr: "127.0.0.1:0", Insecure: true, Timing: LocalTiming(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })
	d := &delegate{c: c}
	seed := func(kind byte, v any) {
		b, err := encodeMsg(kind, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(kindAttachment, wireAttach{Node: "x", Connector: "k", Version: 1})
	seed(kindTokens, []map[string]any{{"jti": "j", "exp": time.Now()}})
	seed(kindLeave, wireLeave{ID: "x"})
	seed(kindState, wireState{Attachments: []wireAttach{{Node: "x", Connector: "k", Version: 2, Deleted: true}}})
	f.Add([]byte{kindCoord, '{', '"', 'V', 'e', 'c', '"', ':', '[', '1', 'e', '9', '9', '9', ']', '}'})
	f.Add([]byte(`{"i":"x","r":"y","k":"!!"}`))
	f.Add([]byte{})
	f.Add([]byte{kindAttachment})
	f.Fuzz(func(t *testing.T, b []byte) {
		d.NotifyMsg(b)
		d.MergeRemoteState(b, false)
		d.NotifyPingComplete(&memberlist.Node{Name: "x"}, time.Millisecond, b)
		_ = d.NotifyAlive(&memberlist.Node{Name: "x", Meta: b})
		if m, _, err := c.decodeMeta(b); err == nil && (m.ID == "" || m.Region == "") {
			t.Errorf("decodeMeta accepted %q", b)
		}
		_ = c.Attachments()
	})
}
