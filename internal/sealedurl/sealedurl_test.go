package sealedurl_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/checkpoint-quota/checkpoint-quota/internal/sealedurl"
)

func TestOnlyTheRequestsKeyOpensTheGrant(t *testing.T) {
	alice, err := sealedurl.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := sealedurl.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sealedurl.ParsePublicKey(alice.Public())
	if err != nil {
		t.Fatalf("the plugin's own key: %v", err)
	}
	want := sealedurl.Grant{URL: "https://store.example/bucket/key?X-Amz-Signature=abc", CABundle: "-----BEGIN CERTIFICATE-----"}
	sealed, err := sealedurl.Seal(pub, want)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "X-Amz-Signature") || strings.Contains(sealed, "store.example") {
		t.Fatalf("the sealed grant shows the URL: %s", sealed)
	}
	got, err := alice.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("opened grant (-want +got):\n%s", diff)
	}
	if _, err := other.Open(sealed); err == nil {
		t.Error("another request's key opened the grant")
	}
	raw, _ := base64.StdEncoding.DecodeString(sealed)
	raw[len(raw)-1] ^= 1
	if _, err := alice.Open(base64.StdEncoding.EncodeToString(raw)); err == nil {
		t.Error("an altered grant opened")
	}
}

func TestParsePublicKeyRefusesWhatIsNotAKey(t *testing.T) {
	key, _ := sealedurl.NewKey()
	cases := map[string]struct {
		request string
		want    string
	}{
		"not base64":    {request: "not a key!", want: "not base64"},
		"too short":     {request: base64.StdEncoding.EncodeToString(make([]byte, 16)), want: "16 bytes, where a key has 32"},
		"too long":      {request: strings.Repeat("A", 300000), want: "300000 characters, where a key is 44"},
		"all zeros":     {request: base64.StdEncoding.EncodeToString(make([]byte, 32)), want: "all zeros"},
		"empty":         {request: "", want: "0 bytes"},
		"a key (valid)": {request: key.Public()},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := sealedurl.ParsePublicKey(tc.request)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused a key: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("ParsePublicKey = %v; want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestRefIsBounded(t *testing.T) {
	key, _ := sealedurl.NewKey()
	if got := sealedurl.Ref(key.Public()); got != key.Public() {
		t.Errorf("Ref of a key = %q; want the key", got)
	}
	huge := strings.Repeat("x", 200000)
	if got := sealedurl.Ref(huge); len(got) > 64 || got == sealedurl.Ref(huge+"y") {
		t.Errorf("Ref of a huge request = %q; want at most 64 characters, one per request", got)
	}
}
