package token

import (
	"context"
	"testing"
)

// BenchmarkVerify compares a cache hit with a full Ed25519 verification.
func BenchmarkVerify(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"cached", 0}, {"uncached", -1}} {
		p := testParams
		p.CacheSize = bc.size
		f := newFixture(b, &keyStore{}, p, KeyParams{})
		raw, _ := f.issue(b)
		ctx := context.Background()
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.ver.Verify(ctx, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := f.ver.Verify(ctx, raw); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkIssue(b *testing.B) {
	f := newFixture(b, &keyStore{}, testParams, KeyParams{})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.iss.Issue("0190c0de-0000-7000-8000-000000000001", "0190c0de-0000-7000-8000-0000000000a1", []string{"pwd"}); err != nil {
			b.Fatal(err)
		}
	}
}
