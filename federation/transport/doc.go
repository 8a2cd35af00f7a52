// Package transport owns the federation wire under the API: the signed
// outbound client (X-Matrix on every request, server discovery in the
// spec's order, an SSRF guard checked on the dialled IP), the inbound
// X-Matrix check as chi middleware, the federation router, and the
// listener's TLS certificate.
//
// It wraps mautrix-go's federation package (client, resolver, header
// parser) rather than re-implementing the wire. It holds no room logic:
// federation/inbound and federation/outbound build on it.
package transport
