package notification

// Membership is a change to a conversation's members: who a message in it
// reaches. Webhook adapters report it, the stores keep it, and the ingest
// pipeline reads it; it is part of the model so that no store needs an
// adapter's package.
type Membership struct {
	Conversation string   `json:"conversation"`
	Set          []string `json:"set,omitempty"` // the full list, replacing what was known
	Add          []string `json:"add,omitempty"`
	Remove       []string `json:"remove,omitempty"`
	Deleted      bool     `json:"deleted,omitempty"` // the conversation is gone
}
