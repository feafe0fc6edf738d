package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"

	"github.com/heraldhq/herald/hub"
	"github.com/heraldhq/herald/pkg/broker"
	"github.com/heraldhq/herald/pkg/queue"
	"github.com/heraldhq/herald/pkg/webhook"
)

// httpError is an error with the HTTP status and the machine-readable code
// it maps to; every handler error ends up as {"error":{"code","message"}}.
type httpError struct {
	Status  int
	Code    string
	Message string
}

func (e *httpError) Error() string { return e.Code + ": " + e.Message }

// apiCode is one entry of the error catalog: a code and its status.
type apiCode struct {
	status int
	code   string
}

// with is the code's error carrying msg, which says what to fix.
func (c apiCode) with(msg string) *httpError {
	return &httpError{Status: c.status, Code: c.code, Message: msg}
}

// The error catalog: every code the HTTP API answers with, and its
// status. One condition has one code wherever it is met; the README's API
// section lists them, and a code is never renamed once released.
var (
	codeBadBody          = apiCode{http.StatusBadRequest, "bad_body"}       // the body could not be read
	codeMalformedJSON    = apiCode{http.StatusBadRequest, "malformed_json"} // the body is not JSON of the right shape
	codeInvalidField     = apiCode{http.StatusBadRequest, "invalid_field"}  // a field or parameter is missing or wrong
	codeInvalidCursor    = apiCode{http.StatusBadRequest, "invalid_cursor"} // a resume cursor is malformed
	codeInvalidPayload   = apiCode{http.StatusBadRequest, "invalid_payload"}
	codeNoSession        = apiCode{http.StatusBadRequest, "no_session"}
	codeUnauthorized     = apiCode{http.StatusUnauthorized, "unauthorized"}
	codeInvalidToken     = apiCode{http.StatusUnauthorized, "invalid_token"}
	codeInvalidSignature = apiCode{http.StatusUnauthorized, "invalid_signature"}
	codeStaleTimestamp   = apiCode{http.StatusUnauthorized, "stale_timestamp"}
	codeForbidden        = apiCode{http.StatusForbidden, "forbidden"}
	codeOriginNotAllowed = apiCode{http.StatusForbidden, "origin_not_allowed"}
	codeHostNotAllowed   = apiCode{http.StatusForbidden, "host_not_allowed"}
	codeNotFound         = apiCode{http.StatusNotFound, "not_found"}
	codeUnknownProvider  = apiCode{http.StatusNotFound, "unknown_provider"}
	codeMethodNotAllowed = apiCode{http.StatusMethodNotAllowed, "method_not_allowed"}
	codeBodyTimeout      = apiCode{http.StatusRequestTimeout, "body_timeout"}
	codeInProgress       = apiCode{http.StatusConflict, "in_progress"}
	codeTooManyDevices   = apiCode{http.StatusConflict, "too_many_devices"}
	codeNoJWTSecret      = apiCode{http.StatusConflict, "no_jwt_secret"}
	codeNotConfigured    = apiCode{http.StatusConflict, "not_configured"}
	codeBodyTooLarge     = apiCode{http.StatusRequestEntityTooLarge, "body_too_large"}
	codeUnsupportedMedia = apiCode{http.StatusUnsupportedMediaType, "unsupported_media_type"}
	codeKeyReused        = apiCode{http.StatusUnprocessableEntity, "idempotency_key_reused"}
	codeRateLimited      = apiCode{http.StatusTooManyRequests, "rate_limited"}
	codeTooManyConns     = apiCode{http.StatusTooManyRequests, "too_many_connections"}
	codeInternal         = apiCode{http.StatusInternalServerError, "internal"}
	codeUnavailable      = apiCode{http.StatusServiceUnavailable, "unavailable"}
	codeShuttingDown     = apiCode{http.StatusServiceUnavailable, "shutting_down"}
	codeBusy             = apiCode{http.StatusServiceUnavailable, "busy"}
)

// The catalog's errors that always carry the same message.
var (
	errBadBody          = codeBadBody.with("could not read request body")
	errUnauthorized     = codeUnauthorized.with("missing or invalid credentials")
	errInvalidToken     = codeInvalidToken.with("invalid or expired token")
	errInvalidSignature = codeInvalidSignature.with("bad or missing signature")
	errStaleTimestamp   = codeStaleTimestamp.with("timestamp outside the allowed window")
	errNotFound         = codeNotFound.with("no such resource")
	errMethodNotAllowed = codeMethodNotAllowed.with("method not allowed")
	errBodyTimeout      = codeBodyTimeout.with("request body not received in time")
	errTooLarge         = codeBodyTooLarge.with("request body exceeds the limit")
	errTooManyConns     = codeTooManyConns.with("too many connections from this address")
	errInternal         = codeInternal.with("internal error")
	errUnavailable      = codeUnavailable.with("back-end unavailable, retry later")
	errShuttingDown     = codeShuttingDown.with("node shutting down, reconnect")
	errBusy             = codeBusy.with("too many request bodies in flight, retry later")
	errResetCursor      = codeInvalidCursor.with("since: the cursor can no longer be resumed from")
)

// invalidField is the invalid_field error for one field or parameter.
func invalidField(field, msg string) *httpError {
	return codeInvalidField.with(field + ": " + msg)
}

// errorFor maps any error a handler meets to its catalog entry: the
// catalog's own errors as they are, the sentinel errors of the packages
// below by what they mean, and anything else to internal.
func errorFor(err error) *httpError {
	var he *httpError
	var fe *webhook.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, webhook.ErrStale):
		return errStaleTimestamp
	case errors.Is(err, webhook.ErrUnauthorized):
		return errInvalidSignature
	case errors.As(err, &fe):
		if fe.Field == "" {
			return codeInvalidPayload.with(fe.Reason)
		}
		return codeInvalidPayload.with(fe.Field + ": " + fe.Reason)
	case errors.Is(err, hub.ErrClosing):
		return errShuttingDown
	case errors.Is(err, queue.ErrUnavailable), errors.Is(err, broker.ErrUnavailable):
		return errUnavailable
	case errors.Is(err, broker.ErrReset):
		return errResetCursor
	case errors.As(err, &mbe):
		return errTooLarge
	}
	return errInternal
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// handle adapts a handler that answers success itself and returns its
// error, so that every error is answered by writeError.
func handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	}
}

// writeError answers err as {"error":{"code","message"}} with the status
// errorFor gives it.
func writeError(w http.ResponseWriter, err error) {
	he := errorFor(err)
	writeJSON(w, he.Status, map[string]any{"error": map[string]string{"code": he.Code, "message": he.Message}})
}

// decodeJSON reads a JSON body of at most limit bytes into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	buf, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	defer buf.release()
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return jsonError(err)
	}
	return nil
}

// jsonError describes a decoding error in the request's terms: the JSON
// field and the kind of value it takes, never the Go types behind them.
func jsonError(err error) *httpError {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return invalidField(te.Field, fmt.Sprintf("expected %s, got %s", jsonKind(te.Type), te.Value))
	case errors.As(err, &te):
		return codeMalformedJSON.with(fmt.Sprintf("request body must be %s, got %s", jsonKind(te.Type), te.Value))
	case errors.As(err, &se):
		return codeMalformedJSON.with(fmt.Sprintf("request body is not valid JSON (at byte %d)", se.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return codeMalformedJSON.with("request body is not valid JSON (it ends too soon)")
	}
	return codeMalformedJSON.with("request body is not valid JSON")
}

// jsonKind names the JSON kind of value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "a value"
}
