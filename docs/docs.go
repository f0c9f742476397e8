// Package docs holds authd's published contract: OpenAPI is the OpenAPI
// description of the public API (openapi.yaml), embedded in the binary so
// that the server can serve it at GET /openapi.yaml and the tests can
// validate real answers against the very file users read.
package docs

import _ "embed"

// OpenAPI is the content of docs/openapi.yaml (a string: it cannot be changed).
//
//go:embed openapi.yaml
var OpenAPI string
