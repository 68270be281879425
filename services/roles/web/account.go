package web

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
)

// The signed-in person's own account: who they are, and changing their password (the current
// one first; every other session of theirs ends; recorded in the account audit).

type accountData struct {
	frame
	Err *fieldErrors
}

func (s *Server) accountPage(c echo.Context) error {
	return s.showAccount(c, http.StatusOK, nil)
}

func (s *Server) showAccount(c echo.Context, status int, fe *fieldErrors) error {
	sess := sessionOf(c)
	return s.render(c, status, "account", accountData{frame: frame{Title: "Your account", User: &sess.User, CSRF: sess.CSRF, Nav: "account",
		Flash: c.QueryParam("done")}, Err: fe})
}

func (s *Server) changePassword(c echo.Context) error {
	next := c.FormValue("password")
	if next != c.FormValue("password_again") {
		return s.showAccount(c, http.StatusBadRequest, &fieldErrors{Field: "password_again", Message: "The two new passwords differ."})
	}
	err := s.people.ChangePassword(c.Request().Context(), *sessionOf(c), c.FormValue("current_password"), next)
	if fe := asFieldError(err); fe != nil {
		return s.showAccount(c, http.StatusBadRequest, fe)
	}
	if err != nil {
		return s.fail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, "/account?done="+url.QueryEscape("Password changed; your other sessions were signed out."))
}
