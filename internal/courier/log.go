package courier

import (
	"context"
	"log/slog"
	"slices"

	"github.com/authd/authd/internal/auth"
)

// LogSender is the embedded default provider of a channel with nothing
// configured: it logs that a message would be sent (channel, template,
// recipient and the names of its data) and accepts it. It never logs the
// data itself: links and codes are secrets.
type LogSender struct {
	logger *slog.Logger
}

var _ auth.Sender = (*LogSender)(nil)

// NewLogSender returns a LogSender writing to logger.
func NewLogSender(logger *slog.Logger) *LogSender {
	return &LogSender{logger: logger.With("component", "courier")}
}

// Deliver logs m without its data's values and returns nil.
func (l *LogSender) Deliver(ctx context.Context, m auth.Message) error {
	keys := make([]string, 0, len(m.Data))
	for k := range m.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	l.logger.InfoContext(ctx, "courier: no provider configured; message not sent (log delivery)",
		slog.String("channel", string(m.Channel)), slog.String("template", m.Template),
		slog.String("to", m.To), slog.Any("data_keys", keys))
	return nil
}
