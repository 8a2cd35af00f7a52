// Package push owns pushers and push delivery: the rules of POST
// /pushers/set (which kinds, which URLs, how many), and the durable
// delivery of notifications to push gateways with the Push Gateway API
// (POST /_matrix/push/v1/notify).
//
// Delivery follows the room logs, as the outbound federation queue does:
// the room writer's commit notice (Committed) only records a position and
// wakes the scanner, so a send never waits for push. The scanner reads the
// events of rooms where someone has an http pusher, evaluates each against
// the whole push ruleset of each such member (not their own events, not
// events from before they joined; pushrules.Evaluator, compiled once per
// user and cached until they edit a rule), and for what notifies writes one
// queue row per pusher, with the counts, the matching rule's tweaks and the
// prio of that moment, in the same transaction that moves its position:
// a restart neither loses nor repeats a row. One worker per pusher with
// work sends its rows oldest first, one request each, retrying with
// exponential backoff and jitter while the gateway fails, and removes the
// pusher when the gateway rejects its pushkey.
//
// Conditions read the event, the room's current joined count, the member's
// display name in the room (from their membership event) and, for
// sender_notification_permission, the room's current power levels. It
// does not send email.
// Every request goes through an SSRF guard: private and loopback addresses
// are refused unless config push.allow_ips opens them.
package push
