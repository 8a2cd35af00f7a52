package config

// Envelopes configures the wallet and red envelopes (packages wallet and
// envelopes, docs/envelopes.md). Zero values take the defaults named.
type Envelopes struct {
	// Currency is the deployment's one currency, an ISO 4217 code; every
	// amount is an integer in its minor unit. Zero value means "CNY".
	Currency string `yaml:"currency"`
	// MaxTotal is the largest total of one envelope, in minor units. Zero
	// value means 20000 (200.00 with two decimals, WeChat's limit).
	MaxTotal int64 `yaml:"max_total"`
	// MaxCount is the largest number of shares of one envelope. Zero value
	// means 100.
	MaxCount int `yaml:"max_count"`
	// PerMinute is how many envelopes one user may send a minute. Zero
	// value means 10.
	PerMinute int `yaml:"per_minute"`
	// ExpirySeconds is how long an envelope may be claimed; the sweeper
	// then refunds the remainder to the sender. Zero value means 86400 (24 h).
	ExpirySeconds int `yaml:"expiry_seconds"`
	// SweepIntervalMs is how often the sweeper looks for expired
	// envelopes. Zero value means 60000 (one minute).
	SweepIntervalMs int `yaml:"sweep_interval_ms"`
}

func (e *Envelopes) fillDefaults() {
	setDefault(&e.Currency, "CNY")
	setDefault(&e.MaxTotal, 20000)
	setDefault(&e.MaxCount, 100)
	setDefault(&e.PerMinute, 10)
	setDefault(&e.ExpirySeconds, 86400)
	setDefault(&e.SweepIntervalMs, 60000)
}
