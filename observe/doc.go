// Package observe lets operators see a running server: Prometheus figures
// for every HTTP request (by chi route pattern, never by raw path, so the
// series stay few), /sync long-polls, the store's sizes and pools; a
// request ID on every log line a request causes and a warning for slow
// requests; and the /healthz and /readyz probes for load balancers.
//
// Nothing here is global: the homeserver builds one HTTP observer and one
// prometheus.Registry per server and passes them where they are needed.
package observe
