package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
)

// ChainProblem is one broken link of a stream's hash chain.
type ChainProblem struct {
	StreamID string `json:"stream_id"`
	Version  int64  `json:"version"`
	Position int64  `json:"position"`
	Problem  string `json:"problem"`
}

// ChainReport is the result of verifying every stream's hash chain.
type ChainReport struct {
	Streams  int               `json:"streams"`
	Events   int               `json:"events"`
	Problems []ChainProblem    `json:"problems"`
	Heads    map[string]string `json:"heads,omitempty"` // stream id -> hex hash of its last event
}

// VerifyChains recomputes the hash chain of every stream (migration 0020) and reports each event
// whose content, predecessor or position in the stream no longer matches: an edited event breaks
// its own link (and, if its hash was forged too, the next one), a removed event leaves a version
// gap and breaks the next link, reordered events break both. Heads, when asked for, let an
// operator anchor the chains outside the database, which also catches a whole tail rewritten.
func VerifyChains(ctx context.Context, q Querier, withHeads bool) (*ChainReport, error) {
	rows, err := q.Query(ctx, `
		SELECT stream_id, version, position, hash,
		       sha256(coalesce(lag(hash) OVER w, '\x'::bytea) ||
		              vexil_event_content(stream_id, version, event_type, data, metadata, occurred_at)) AS expected,
		       coalesce(lag(version) OVER w, 0) AS previous
		FROM events WINDOW w AS (PARTITION BY stream_id ORDER BY version)
		ORDER BY stream_id, version`)
	if err != nil {
		return nil, TranslateError(fmt.Errorf("verify chains: %w", err))
	}
	defer rows.Close()
	rep := &ChainReport{Problems: []ChainProblem{}}
	if withHeads {
		rep.Heads = map[string]string{}
	}
	last := ""
	for rows.Next() {
		var streamID string
		var version, position, previous int64
		var hash, expected []byte
		if err := rows.Scan(&streamID, &version, &position, &hash, &expected, &previous); err != nil {
			return nil, fmt.Errorf("verify chains: scan: %w", err)
		}
		rep.Events++
		if streamID != last {
			rep.Streams++
			last = streamID
		}
		if version != previous+1 {
			rep.Problems = append(rep.Problems, ChainProblem{StreamID: streamID, Version: version, Position: position,
				Problem: fmt.Sprintf("version %d follows version %d: events are missing or reordered", version, previous)})
		}
		if hex.EncodeToString(hash) != hex.EncodeToString(expected) {
			rep.Problems = append(rep.Problems, ChainProblem{StreamID: streamID, Version: version, Position: position,
				Problem: "hash does not match the event's content and its predecessor: the event or the one before it was altered"})
		}
		if withHeads {
			rep.Heads[streamID] = hex.EncodeToString(hash)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, TranslateError(fmt.Errorf("verify chains: %w", err))
	}
	return rep, nil
}
