package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
)

// httpError is an error with the HTTP status and the machine-readable code
// it maps to; every handler error ends up as {"error":{"code","message"}}.
type httpError struct {
	Status  int
	Code    string
	Message string
}

func (e *httpError) Error() string { return e.Code + ": " + e.Message }

func errf(status int, code, msg string) *httpError {
	return &httpError{Status: status, Code: code, Message: msg}
}

var (
	errUnauthorized = errf(http.StatusUnauthorized, "unauthorized", "missing or invalid credentials")
	errForbidden    = errf(http.StatusForbidden, "forbidden", "not allowed")
	errNotFound     = errf(http.StatusNotFound, "not_found", "no such resource")
	errTooLarge     = errf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds the limit")
	errUnavailable  = errf(http.StatusServiceUnavailable, "unavailable", "back-end unavailable, retry later")
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = errf(http.StatusInternalServerError, "internal", "internal error")
	}
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
		return errf(http.StatusBadRequest, "invalid_field", fmt.Sprintf("%s: expected %s, got %s", te.Field, jsonKind(te.Type), te.Value))
	case errors.As(err, &te):
		return errf(http.StatusBadRequest, "malformed_json", fmt.Sprintf("request body must be %s, got %s", jsonKind(te.Type), te.Value))
	case errors.As(err, &se):
		return errf(http.StatusBadRequest, "malformed_json", fmt.Sprintf("request body is not valid JSON (at byte %d)", se.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errf(http.StatusBadRequest, "malformed_json", "request body is not valid JSON (it ends too soon)")
	}
	return errf(http.StatusBadRequest, "malformed_json", "request body is not valid JSON")
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
