package clientip_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/authd/authd/internal/clientip"
)

func ExampleResolver_Key() {
	trusted, err := clientip.ParsePrefixes("10.0.0.0/8")
	if err != nil {
		panic(err)
	}
	res := clientip.NewResolver(trusted)

	r := httptest.NewRequest("POST", "/v1/login", nil)
	r.RemoteAddr = "10.0.0.2:51000" // our load balancer
	r.Header.Set("X-Forwarded-For", "6.6.6.6, 2001:db8:aa:bb::1")
	fmt.Println(res.ClientIP(r), res.Key(r))

	r.RemoteAddr = "198.51.100.9:40000" // not a proxy: its headers are ignored
	fmt.Println(res.ClientIP(r), res.Key(r))
	// Output:
	// 2001:db8:aa:bb::1 2001:db8:aa:bb::/64
	// 198.51.100.9 198.51.100.9/32
}
