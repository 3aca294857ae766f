package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// A written line carries every key/value pair given to its logger, in order of giving,
// and a line below the level is not written.
func TestLinesCarryTheirValues(t *testing.T) {
	var buf bytes.Buffer
	log := New(&zap.Options{DestWriter: &buf}).WithName("agent").WithValues("controller", "archive").WithValues("reconcileID", "r-1")
	log.V(1).Info("below the level", "x", 1)
	log.Info("published", "path", "/d/a.tar")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("one JSON line expected, got %q: %v", buf.String(), err)
	}
	got := map[string]any{"logger": line["logger"], "msg": line["msg"], "controller": line["controller"],
		"reconcileID": line["reconcileID"], "path": line["path"]}
	want := map[string]any{"logger": "agent", "msg": "published", "controller": "archive", "reconcileID": "r-1", "path": "/d/a.tar"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("line (-want +got):\n%s", diff)
	}
}

// countingCore counts the fields it was asked to encode ahead of a line.
type countingCore struct {
	zapcore.Core
	with *int
}

func (c countingCore) With(fields []zapcore.Field) zapcore.Core {
	*c.with += len(fields)
	return countingCore{c.Core.With(fields), c.with}
}

func (c countingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Fields are encoded when a line is written, not when they are given.
func TestFieldsWaitForALine(t *testing.T) {
	var buf bytes.Buffer
	encoded := 0
	inner := countingCore{zapcore.NewCore(zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"}), zapcore.AddSync(&buf), zapcore.InfoLevel), &encoded}
	core := lazyCore{inner}.With([]zapcore.Field{{Key: "a", Type: zapcore.StringType, String: "1"}}).
		With([]zapcore.Field{{Key: "b", Type: zapcore.StringType, String: "2"}})
	if ce := core.Check(zapcore.Entry{Level: zapcore.DebugLevel, Message: "below"}, nil); ce != nil {
		t.Fatal("a debug line passed the info level")
	}
	if encoded != 0 {
		t.Fatalf("%d fields encoded before any line was written, want 0", encoded)
	}
	if ce := core.Check(zapcore.Entry{Level: zapcore.InfoLevel, Message: "shown"}, nil); ce != nil {
		ce.Write()
	}
	if diff := cmp.Diff([2]any{2, `{"msg":"shown","a":"1","b":"2"}` + "\n"}, [2]any{encoded, buf.String()}); diff != "" {
		t.Errorf("fields encoded, line (-want +got):\n%s", diff)
	}
}

// The binaries' flags, at their defaults, give a logger on which a malformed call (an odd
// number of key/value arguments) writes a line instead of panicking; with --zap-devel it
// panics, which shows the test can tell.
func TestMalformedLogCallDoesNotPanic(t *testing.T) {
	tests := map[string]struct {
		args      []string
		wantPanic bool
	}{
		"default":     {wantPanic: false},
		"--zap-devel": {args: []string{"--zap-devel"}, wantPanic: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			opts := BindFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			opts.DestWriter = &buf
			log := New(opts)
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				log.Info("archive read", "archive") //nolint:loggercheck // the value is missing, on purpose
				return false
			}()
			if panicked != tc.wantPanic {
				t.Errorf("panicked = %v, want %v; logged:\n%s", panicked, tc.wantPanic, buf.String())
			}
			if !tc.wantPanic && !bufio.NewScanner(&buf).Scan() {
				t.Error("the malformed call logged nothing")
			}
		})
	}
}
