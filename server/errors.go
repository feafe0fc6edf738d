package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return errf(http.StatusBadRequest, "bad_body", "could not read request body")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errf(http.StatusBadRequest, "malformed_json", "request body is not valid JSON: "+err.Error())
	}
	return nil
}
