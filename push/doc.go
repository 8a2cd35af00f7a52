// Package push owns pushers and push delivery: the rules of POST
// /pushers/set (which kinds, which URLs, how many), and the durable
// delivery of notifications to push gateways with the Push Gateway API
// (POST /_matrix/push/v1/notify).
//
// Delivery follows the room logs, as the outbound federation queue does:
// the room writer's commit notice (Committed) only records a position and
// wakes the scanner, so a send never waits for push. The scanner reads the
// events that notify (the class the writer stored with each event,
// pushrules.Classify), decides per member with an http pusher whether the
// event notifies them (not their own, not in a room they muted, not with the
// master rule on), and writes one queue row per pusher, with the counts and
// tweaks of that moment, in the same transaction that moves its position:
// a restart neither loses nor repeats a row. One worker per pusher with
// work sends its rows oldest first, one request each, retrying with
// exponential backoff and jitter while the gateway fails, and removes the
// pusher when the gateway rejects its pushkey.
//
// It does not evaluate a user's own push rules beyond muted rooms and the
// master switch (see package pushrules for why), and does not send email.
// Every request goes through an SSRF guard: private and loopback addresses
// are refused unless config push.allow_ips opens them.
package push
