// Test-only module: cross-checks package stateres against
// gomatrixserverlib (Apache-2.0) without adding it to Parley's go.mod.
module github.com/parley-im/parley/rooms/stateres/crosscheck

go 1.26.0

require (
	github.com/matrix-org/gomatrixserverlib v0.0.0-20250815065806-6697d93cbcba
	github.com/parley-im/parley v0.0.0
)

require (
	github.com/hashicorp/go-set/v3 v3.0.0 // indirect
	github.com/matrix-org/util v0.0.0-20221111132719-399730281e66 // indirect
	github.com/oleiade/lane/v2 v2.0.0 // indirect
	github.com/sirupsen/logrus v1.9.3 // indirect
	github.com/tidwall/gjson v1.20.2 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.3.0 // indirect
	github.com/tidwall/sjson v1.2.5 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/exp v0.0.0-20261113113407-e3970619a1a4 // indirect
	golang.org/x/sys v0.50.0 // indirect
	maunium.net/go/mautrix v0.33.0 // indirect
)

replace github.com/parley-im/parley => ../../..
