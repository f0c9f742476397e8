package password

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEncodeParseRoundTrip(t *testing.T) {
	t.Parallel()
	salt := []byte("0123456789abcdef")
	key := bytes.Repeat([]byte{0xA5}, 32)
	for _, tc := range []struct {
		name string
		p    Params
		want string
	}{
		{"default", DefaultParams(), "$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU"},
		{"test", TestParams(), "$argon2id$v=19$m=8,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU"},
		{"caps", Params{Memory: MaxMemory, Iterations: MaxIterations, Parallelism: MaxParallelism}, "$argon2id$v=19$m=262144,t=16,p=16$MDEyMzQ1Njc4OWFiY2RlZg$paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := Encode(tc.p, salt, key)
			if s != tc.want {
				t.Fatalf("Encode = %q, want %q", s, tc.want)
			}
			p, gotSalt, gotKey, err := Parse(s)
			if err != nil {
				t.Fatalf("Parse(%q): %v", s, err)
			}
			want := tc.p
			want.SaltLen, want.KeyLen = uint32(len(salt)), uint32(len(key))
			if p != want || !bytes.Equal(gotSalt, salt) || !bytes.Equal(gotKey, key) {
				t.Errorf("Parse = %+v %x %x, want %+v %x %x", p, gotSalt, gotKey, want, salt, key)
			}
		})
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	t.Parallel()
	const salt, key = "MDEyMzQ1Njc4OWFiY2RlZg", "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU"
	ok := "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key
	if _, _, _, err := Parse(ok); err != nil {
		t.Fatalf("baseline %q: %v", ok, err)
	}
	for _, tc := range []struct{ name, s string }{
		{"empty", ""},
		{"dollar", "$"},
		{"argon2i", "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=19456,t=2,p=1$" + salt + "$" + key},
		{"version 16", "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key},
		{"params reordered", "$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key},
		{"extra param", "$argon2id$v=19$m=19456,t=2,p=1,keyid=abc$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=019456,t=2,p=1$" + salt + "$" + key},
		{"plus sign", "$argon2id$v=19$m=+19456,t=2,p=1$" + salt + "$" + key},
		{"minus sign", "$argon2id$v=19$m=19456,t=-2,p=1$" + salt + "$" + key},
		{"empty m", "$argon2id$v=19$m=,t=2,p=1$" + salt + "$" + key},
		{"space", "$argon2id$v=19$m=19456, t=2,p=1$" + salt + "$" + key},
		{"m overflows uint32", "$argon2id$v=19$m=4294967296,t=2,p=1$" + salt + "$" + key},
		{"m above cap", "$argon2id$v=19$m=262145,t=2,p=1$" + salt + "$" + key},
		{"m huge", "$argon2id$v=19$m=4294967295,t=2,p=1$" + salt + "$" + key},
		{"m zero", "$argon2id$v=19$m=0,t=2,p=1$" + salt + "$" + key},
		{"m below 8p", "$argon2id$v=19$m=31,t=2,p=4$" + salt + "$" + key},
		{"t zero", "$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key},
		{"t above cap", "$argon2id$v=19$m=19456,t=17,p=1$" + salt + "$" + key},
		{"p zero", "$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key},
		{"p above cap", "$argon2id$v=19$m=19456,t=2,p=17$" + salt + "$" + key},
		{"p above uint8", "$argon2id$v=19$m=19456,t=2,p=257$" + salt + "$" + key},
		{"no key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt},
		{"empty salt", "$argon2id$v=19$m=19456,t=2,p=1$$" + key},
		{"empty key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$"},
		{"extra field", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$x"},
		{"trailing dollar", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$"},
		{"padded salt", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key},
		{"url alphabet", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.ReplaceAll(key, "a", "_")},
		{"bad base64", "$argon2id$v=19$m=19456,t=2,p=1$!!!!$" + key},
		{"newline in key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key[:10] + "\n" + key[10:]},
		{"CR in salt", "$argon2id$v=19$m=19456,t=2,p=1$" + salt[:4] + "\r" + salt[4:] + "$" + key},
		{"non-canonical tail bits", "$argon2id$v=19$m=19456,t=2,p=1$" + salt[:len(salt)-1] + "h$" + key},
		{"salt too short", "$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Ng$" + key},
		{"key too short", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$MDEyMzQ1Njc4OWFiY2Q"},
		{"key too long", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.Repeat("A", 88)},
		{"salt far too long", "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("A", 1<<20) + "$" + key},
		{"trailing space", ok + " "},
		{"leading space", " " + ok},
		{"bcrypt", "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, salt, key, err := Parse(tc.s)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %+v, %x, %x, %v; want ErrMalformed", p, salt, key, err)
			}
			if strings.Contains(err.Error(), "MDEy") || strings.Contains(err.Error(), "paWl") {
				t.Errorf("error %q quotes the hash", err)
			}
		})
	}
}

// FuzzParse: Parse never panics, and whatever it accepts is exactly what
// Encode writes for the result, within the caps.
func FuzzParse(f *testing.F) {
	salt := []byte("0123456789abcdef")
	key := bytes.Repeat([]byte{7}, 32)
	f.Add(Encode(DefaultParams(), salt, key))
	f.Add(Encode(TestParams(), salt[:8], key[:16]))
	f.Add(Encode(Params{Memory: MaxMemory, Iterations: MaxIterations, Parallelism: MaxParallelism}, salt, key))
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$")
	f.Add("$argon2id$v=19$m=019456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU")
	f.Add("$argon2id$v=19$m=4294967296,t=2,p=1$$")
	f.Add("$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if err := p.computable(); err != nil {
			t.Fatalf("Parse accepted %+v: %v", p, err)
		}
		if int(p.SaltLen) != len(salt) || int(p.KeyLen) != len(key) {
			t.Fatalf("lengths %+v vs salt %d key %d", p, len(salt), len(key))
		}
		if got := Encode(p, salt, key); got != s {
			t.Fatalf("round trip: Parse(%q) then Encode = %q", s, got)
		}
	})
}
