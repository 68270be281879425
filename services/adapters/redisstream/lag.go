package redisstream

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// GroupLag is how far one consumer group is behind on a stream (XINFO GROUPS).
type GroupLag struct {
	Stream    string
	Group     string
	Consumers int64
	// Pending messages were delivered to a consumer and not acked yet (in flight, or held by a
	// consumer that died: they are claimed by another after MaxIdleTime).
	Pending int64
	// Lag is the number of entries not yet delivered to the group; -1 when Redis cannot tell
	// (after deletions or trimming past the group's position).
	Lag             int64
	LastDeliveredID string
}

// Behind is the number of messages the group has not finished: Pending + Lag (Pending alone
// when Lag is unknown). It is the number to export as the stream-lag gauge.
func (g GroupLag) Behind() int64 {
	if g.Lag < 0 {
		return g.Pending
	}
	return g.Pending + g.Lag
}

// StreamLag returns the lag of every consumer group of stream; none when the stream does not
// exist yet.
func StreamLag(ctx context.Context, client redis.UniversalClient, stream string) ([]GroupLag, error) {
	groups, err := client.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return nil, nil
		}
		return nil, fmt.Errorf("redisstream: XINFO GROUPS %s: %w", stream, err)
	}
	out := make([]GroupLag, len(groups))
	for i, g := range groups {
		out[i] = GroupLag{Stream: stream, Group: g.Name, Consumers: g.Consumers, Pending: g.Pending,
			Lag: g.Lag, LastDeliveredID: g.LastDeliveredID}
	}
	return out, nil
}

// StreamLength returns the number of entries in stream (XLEN), e.g. to watch the dead-letter stream.
func StreamLength(ctx context.Context, client redis.UniversalClient, stream string) (int64, error) {
	n, err := client.XLen(ctx, stream).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstream: XLEN %s: %w", stream, err)
	}
	return n, nil
}
