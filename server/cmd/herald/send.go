package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runSend posts one notification to a node's server API.
func runSend(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	srv := fs.String("server", envOr("HERALD_SERVER", "http://localhost:8080"), "base URL of a Herald node")
	creds := credentialFlags(fs, true, false)
	to := fs.String("to", "", "comma-separated recipient user ids")
	title := fs.String("title", "", "title")
	body := fs.String("body", "", "body")
	link := fs.String("url", "", "URL opened on click")
	tag := fs.String("tag", "", "tag: a later notification with the same tag replaces the popup")
	urgency := fs.String("urgency", "", "high, normal or low")
	id := fs.String("id", "", "idempotency key")
	data := fs.String("data", "", "JSON object of extra data")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" {
		return errors.New("send: --to is required")
	}
	if err := creds.resolve(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	req := map[string]any{"to": strings.Split(*to, ","), "title": *title, "body": *body}
	for k, v := range map[string]string{"url": *link, "tag": *tag, "urgency": *urgency, "id": *id} {
		if v != "" {
			req[k] = v
		}
	}
	if *data != "" {
		req["data"] = json.RawMessage(*data)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*srv, "/")+"/v1/notifications", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	hr.Header.Set("Authorization", "Bearer "+*creds.apiKey)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("send: %s: %s", resp.Status, bytes.TrimSpace(rb))
	}
	_, err = out.Write(rb)
	return err
}
