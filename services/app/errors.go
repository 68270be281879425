package app

import (
	"errors"

	"github.com/vexil-flags/vexil/domain"
)

// IsDuplicateCommand reports whether err is the event store refusing a command id it already
// recorded on the stream: the command happened before.
func IsDuplicateCommand(err error) bool {
	de, ok := domainError(err)
	return ok && de.Code == domain.EConflict && de.Details["duplicate_command"] == true
}

// IsVersionConflict reports whether err is an optimistic-concurrency conflict of an append (the
// stream moved since it was loaded): retrying the command on the new state is safe.
func IsVersionConflict(err error) bool {
	de, ok := domainError(err)
	if !ok || de.Code != domain.EConflict || de.Details["duplicate_command"] == true {
		return false
	}
	_, ok = de.Details["current_version"]
	return ok
}

func domainError(err error) (*domain.Error, bool) {
	var de *domain.Error
	ok := errors.As(err, &de)
	return de, ok
}

// alreadyExists words a conflict on a stream that had to be new (a key is taken).
func alreadyExists(err error, what, key string) error {
	if domain.ErrorCode(err) == domain.EConflict {
		return &domain.Error{Code: domain.EConflict, Field: "key", Message: what + " " + key + " already exists"}
	}
	return err
}

// idTaken words a version conflict on a delivery aggregate that had to be new (an id is taken).
func idTaken(err error, what, id string) error {
	if domain.ErrorCode(err) == domain.EConflict && !IsDuplicateCommand(err) {
		if de, ok := domainError(err); ok && de.Details["current_version"] != nil {
			return &domain.Error{Code: domain.EConflict, Field: "id", Message: what + " " + id + " already exists"}
		}
	}
	return err
}

// invalidKey is the answer to a key (or id) that cannot name a stream.
func invalidKey(field string) error {
	return domain.Invalid(field, "%s must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", field)
}
