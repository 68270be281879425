package postgres

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vexil-flags/vexil/domain"
)

// SQLSTATE codes this package reacts to.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeCheckViolation       = "23514"
	codeNotNullViolation     = "23502"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeQueryCanceled        = "57014"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
	codeTooManyConnections   = "53300"
	codeLockNotAvailable     = "55P03"
	// Text the database cannot store: NUL in text or jsonb (\u0000), bytes that are not UTF-8,
	// a value too long for its column, a row too large for an index, nesting past the stack.
	codeUntranslatableCharacter   = "22P05"
	codeCharacterNotInRepertoire  = "22021"
	codeStringDataRightTruncation = "22001"
	codeProgramLimitExceeded      = "54000"
	codeStatementTooComplex       = "54001"
)

// TranslateError turns a driver error into a domain error, in this one place, so no caller has
// to know SQLSTATE codes. The returned error keeps err in its chain (errors.Is(err,
// context.Canceled) and errors.As(err, *pgconn.PgError) still work) while domain.ErrorCode and
// domain.ErrorMessage see the domain error first. nil stays nil; a *domain.Error passes through.
//
//   - unique violation                     -> EConflict (Details: constraint)
//   - serialization failure, deadlock      -> EConflict (Details: retryable=true)
//   - foreign key violation                -> ENotFound
//   - check / not-null violation           -> EInvalid
//   - NUL or invalid UTF-8 in text, a value
//     too long or too deep to store         -> EInvalid (a safety net: httpapi checks input first)
//   - no rows                              -> ENotFound
//   - canceled, timed out, connection lost -> EUnavailable
//   - anything else                        -> EInternal
func TranslateError(err error) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeUniqueViolation:
			return wrap(&domain.Error{Code: domain.EConflict, Message: "already exists",
				Details: map[string]any{"constraint": pgErr.ConstraintName}}, err)
		case codeSerializationFailure, codeDeadlockDetected:
			return wrap(&domain.Error{Code: domain.EConflict, Message: "concurrent update; retry",
				Details: map[string]any{"retryable": true}}, err)
		case codeForeignKeyViolation:
			return wrap(domain.Errorf(domain.ENotFound, "a referenced object does not exist"), err)
		case codeCheckViolation, codeNotNullViolation:
			return wrap(domain.Errorf(domain.EInvalid, "invalid value"), err)
		case codeUntranslatableCharacter, codeCharacterNotInRepertoire:
			return wrap(domain.Errorf(domain.EInvalid, "text must be valid UTF-8 without NUL characters"), err)
		case codeStringDataRightTruncation, codeProgramLimitExceeded, codeStatementTooComplex:
			return wrap(domain.Errorf(domain.EInvalid, "a value is too long or too deeply nested to store"), err)
		}
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return wrap(domain.Errorf(domain.ENotFound, "not found"), err)
	case errors.Is(err, context.Canceled):
		return wrap(domain.Errorf(domain.EUnavailable, "request canceled"), err)
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err),
		pgErr != nil && pgErr.Code == codeQueryCanceled:
		return wrap(domain.Errorf(domain.EUnavailable, "database timed out; retry later"), err)
	case IsTransient(err):
		return wrap(domain.Errorf(domain.EUnavailable, "database unavailable; retry later"), err)
	}
	return wrap(domain.Errorf(domain.EInternal, "internal error"), err)
}

// IsTransient reports whether err is worth retrying as is: the connection failed or was lost,
// the server is shutting down or full, or the transaction lost a serialization or deadlock race.
// Consumers use it to redeliver a message instead of dead-lettering it.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeSerializationFailure, codeDeadlockDetected, codeAdminShutdown, codeCrashShutdown,
			codeCannotConnectNow, codeTooManyConnections, codeLockNotAvailable:
			return true
		}
		return len(pgErr.Code) == 5 && pgErr.Code[:2] == "08" // connection exception
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// IsUniqueViolation reports whether err is a unique violation, of constraint when it is not "".
func IsUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation &&
		(constraint == "" || pgErr.ConstraintName == constraint)
}

// wrap returns an error whose chain holds the domain error first and the driver error second.
func wrap(de *domain.Error, cause error) error { return &translated{de: de, cause: cause} }

type translated struct {
	de    *domain.Error
	cause error
}

func (t *translated) Error() string   { return t.de.Error() + ": " + t.cause.Error() }
func (t *translated) Unwrap() []error { return []error{t.de, t.cause} }
