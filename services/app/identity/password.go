package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/vexil-flags/vexil/domain"
)

// ChangePassword sets a signed-in person's password after checking the current one. Every other
// session of the person ends (someone who knew the old password is signed out everywhere); the
// change is recorded in the account audit in the same transaction. A wrong current password is
// EInvalid at field current_password; a new one too short or too long is EInvalid at password.
func (s *Store) ChangePassword(ctx context.Context, sess Session, current, next string) error {
	if err := validate(NewUser{Email: sess.User.Email, DisplayName: sess.User.DisplayName, Password: next}); err != nil {
		return err
	}
	var hash string
	if err := s.pool.QueryRow(ctx, `SELECT password_hash FROM console_users WHERE id = $1`, sess.User.ID).Scan(&hash); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ENotFound, "no person with id %q", sess.User.ID)
		}
		return fmt.Errorf("identity: change password of %s: %w", sess.User.ID, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(current)) != nil {
		return domain.Invalid("current_password", "the current password is wrong")
	}
	newHash, err := bcrypt.GenerateFromPassword([]byte(next), bcryptCost)
	if err != nil {
		return fmt.Errorf("identity: hash password: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE console_users SET password_hash = $2 WHERE id = $1`, sess.User.ID, string(newHash)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE console_sessions SET revoked_at = now() WHERE user_id = $1 AND id_hash <> $2 AND revoked_at IS NULL`, sess.User.ID, sess.idHash)
		if err != nil {
			return err
		}
		return record(ctx, tx, AccountEntry{Actor: sess.User.Actor(), Action: ActionPasswordChanged, Subject: sess.User.Actor(),
			After: fmt.Sprintf("%d other sessions ended", tag.RowsAffected())})
	})
	if err != nil {
		return fmt.Errorf("identity: change password of %s: %w", sess.User.ID, err)
	}
	return nil
}
