package domain

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP layer maps each code to exactly one status in one place.
const (
	EConflict     = "conflict"     // a stale version, or a key that already exists (409)
	EInvalid      = "invalid"      // input fails validation (400 / 422)
	ENotFound     = "not_found"    // the thing does not exist (404)
	EUnauthorized = "unauthorized" // no or unknown credentials (401)
	EForbidden    = "forbidden"    // credentials lack the scope (403)
	ETooLarge     = "too_large"    // a body or list over its documented limit (413)
	ERateLimited  = "rate_limited" // back off and retry later (429)
	EUnavailable  = "unavailable"  // a dependency is down; retry later (503)
	EInternal     = "internal"     // anything else; details are logged, never returned (500)
)

// Dependencies an EUnavailable error names in Details[DependencyDetail], so a client (and an
// operator reading the answer) knows what is down without seeing an address or a credential.
const (
	DependencyDetail   = "dependency"
	DependencyDatabase = "database"
	DependencyRedis    = "redis"
)

// Error is the one error type the domain returns. Field names the offending input (a JSON path
// such as "environments.production.rules[2].clauses[0].values") when the error is about input.
type Error struct {
	Code    string
	Message string
	Field   string
	// Details carries machine-readable context, e.g. the current version on a conflict.
	Details map[string]any
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid builds a validation error about one field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// WithField returns a copy of e whose field is prefixed by parent, so nested validators can report
// paths relative to themselves and callers can anchor them.
func (e *Error) WithField(parent string) *Error {
	c := *e
	switch {
	case parent == "":
	case c.Field == "":
		c.Field = parent
	case c.Field[0] == '[':
		c.Field = parent + c.Field
	default:
		c.Field = parent + "." + c.Field
	}
	return &c
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for any other error,
// and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the message of the first *Error in err's chain; other errors yield a
// generic message so internal details never reach clients.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
