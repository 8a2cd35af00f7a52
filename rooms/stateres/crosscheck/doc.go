// Package crosscheck holds only tests: it builds forked rooms, resolves
// them with gomatrixserverlib and with Parley's stateres, and writes the
// v2 answers as vectors into ../testdata for stateres' own tests.
package crosscheck
