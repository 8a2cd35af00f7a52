package clientapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/envelopes"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/wallet"
)

// mountEnvelopes adds the wallet and red-envelope routes under
// /_parley/client/v1 (docs/envelopes.md, docs/api.md).
func (a *API) mountEnvelopes(r chi.Router) {
	if a.wallet == nil || a.envelopes == nil {
		return
	}
	r.Get("/wallet", a.authed(a.getWallet))
	r.Get("/wallet/history", a.authed(a.walletHistory))
	r.Post("/rooms/{roomId}/red_envelopes", a.authed(a.sendEnvelope))
	r.Post("/red_envelopes/{envelopeId}/claim", a.authed(a.claimEnvelope))
	r.Get("/red_envelopes/{envelopeId}", a.authed(a.getEnvelope))
}

// mountWalletAdmin adds the operator's top-up and withdrawal, the admin
// provider of the ledger.
func (a *API) mountWalletAdmin(r chi.Router) {
	if a.wallet == nil {
		return
	}
	r.Post("/wallet/users/{userId}/top_up", a.adminOnly(a.walletMove(true)))
	r.Post("/wallet/users/{userId}/withdraw", a.adminOnly(a.walletMove(false)))
	r.Get("/wallet/users/{userId}", a.adminOnly(func(w http.ResponseWriter, r *http.Request, _ *session) error {
		bal, err := a.wallet.Balance(r.Context(), param(r, "userId"))
		if err != nil {
			return err
		}
		return writeJSON(w, map[string]any{"balance": bal, "currency": a.wallet.Currency()})
	}))
}

// Custom errcodes, namespaced as the spec asks of non-spec codes.
const (
	errEmpty        = "IO.PARLEY.ENVELOPE_EMPTY"
	errExpired      = "IO.PARLEY.ENVELOPE_EXPIRED"
	errInsufficient = "IO.PARLEY.INSUFFICIENT_BALANCE"
)

// moneyErr maps wallet and envelopes errors to Matrix errors; anything
// else is an internal fault for a.fail.
func moneyErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	switch {
	case errors.Is(err, envelopes.ErrNotFound):
		return apierr.NotFound(msg)
	case errors.Is(err, envelopes.ErrForbidden):
		return apierr.Forbidden(msg)
	case errors.Is(err, envelopes.ErrInvalid), errors.Is(err, wallet.ErrInvalid):
		return apierr.InvalidParam(msg)
	case errors.Is(err, envelopes.ErrEmpty):
		return apierr.New(http.StatusConflict, errEmpty, msg)
	case errors.Is(err, envelopes.ErrExpired):
		return apierr.New(http.StatusGone, errExpired, msg)
	case errors.Is(err, envelopes.ErrInsufficient), errors.Is(err, wallet.ErrInsufficient):
		return apierr.New(http.StatusForbidden, errInsufficient, msg)
	case errors.Is(err, envelopes.ErrLimited):
		return apierr.LimitExceeded(60_000)
	}
	return err
}

// amountParam parses a JSON amount: an integer literal, no fraction or
// exponent, within int64. Anything else is M_INVALID_PARAM, never a
// rounding.
func amountParam(name string, raw []byte) (int64, error) {
	s := string(raw)
	if s == "" || s == "null" {
		return 0, apierr.MissingParam(name + " is required")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, apierr.InvalidParam(name + " must be an integer number of minor units")
	}
	return n, nil
}

func (a *API) getWallet(w http.ResponseWriter, r *http.Request, s *session) error {
	bal, err := a.wallet.Balance(r.Context(), s.UserID)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"balance": bal, "currency": a.wallet.Currency()})
}

func (a *API) walletHistory(w http.ResponseWriter, r *http.Request, s *session) error {
	limit := 50
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return apierr.InvalidParam("limit must be a positive integer")
		}
		limit = min(n, 100)
	}
	es, next, err := a.wallet.History(r.Context(), s.UserID, r.URL.Query().Get("from"), limit)
	if err != nil {
		return moneyErr(err)
	}
	if es == nil {
		es = []wallet.Entry{}
	}
	out := map[string]any{"chunk": es, "currency": a.wallet.Currency()}
	if next != "" {
		out["next_batch"] = next
	}
	return writeJSON(w, out)
}

func (a *API) walletMove(topUp bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ *session) error {
		var req struct {
			Amount rawNumber `json:"amount"`
			Key    string    `json:"idempotency_key"`
		}
		if err := a.readJSON(r, &req); err != nil {
			return err
		}
		user := param(r, "userId")
		if !pdu.ValidUserID(user) {
			return apierr.InvalidParam("userId must be a user ID")
		}
		amount, err := amountParam("amount", req.Amount)
		if err != nil {
			return err
		}
		var res wallet.Result
		if topUp {
			res, err = a.wallet.TopUp(r.Context(), wallet.AdminProvider{}, user, amount, req.Key)
		} else {
			res, err = a.wallet.Withdraw(r.Context(), wallet.AdminProvider{}, user, amount, req.Key)
		}
		if err != nil {
			return moneyErr(err)
		}
		return writeJSON(w, res)
	}
}

// rawNumber keeps a JSON value's text so amounts are parsed exactly.
type rawNumber []byte

func (n *rawNumber) UnmarshalJSON(b []byte) error {
	*n = append((*n)[:0], b...)
	return nil
}

func (a *API) sendEnvelope(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Total   rawNumber `json:"total"`
		Count   rawNumber `json:"count"`
		Kind    string    `json:"kind"`
		Message string    `json:"message"`
		Key     string    `json:"idempotency_key"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	total, err := amountParam("total", req.Total)
	if err != nil {
		return err
	}
	count, err := amountParam("count", req.Count)
	if err != nil {
		return err
	}
	if count < 1 || count > 1<<30 {
		return apierr.InvalidParam("count must be a positive integer")
	}
	v, err := a.envelopes.Send(r.Context(), envelopes.SendRequest{RoomID: param(r, "roomId"), Sender: s.UserID, Total: total,
		Count: int(count), Kind: req.Kind, Message: req.Message, Key: req.Key})
	if err != nil {
		return moneyErr(err)
	}
	return writeJSON(w, v)
}

func (a *API) claimEnvelope(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := a.envelopes.Claim(r.Context(), param(r, "envelopeId"), s.UserID)
	if err != nil {
		return moneyErr(err)
	}
	return writeJSON(w, v)
}

func (a *API) getEnvelope(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := a.envelopes.Get(r.Context(), param(r, "envelopeId"), s.UserID)
	if err != nil {
		return moneyErr(err)
	}
	return writeJSON(w, v)
}
