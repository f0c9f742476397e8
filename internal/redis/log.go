package redis

import (
	"context"
	"fmt"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"
)

// clientLogger carries go-redis's own messages (one per failed dial during
// an outage) into slog at debug level: the callers already report outages
// through their errors, metrics and rate-limited warnings.
type clientLogger struct{ l *slog.Logger }

func (c clientLogger) Printf(ctx context.Context, format string, v ...any) {
	if c.l.Enabled(ctx, slog.LevelDebug) {
		c.l.DebugContext(ctx, fmt.Sprintf(format, v...))
	}
}

// RouteClientLogs sends go-redis's log lines to logger instead of stderr.
// go-redis has one logger per process, so only the program's start-up (run)
// may call this.
func RouteClientLogs(logger *slog.Logger) {
	goredis.SetLogger(clientLogger{l: logger.With("component", "go-redis")})
}
