package web

import (
	"github.com/labstack/echo/v4"

	"github.com/vexil-flags/vexil/services/app/identity"
)

// registerAdmin adds the pages of projects, environments and SDK keys, members, API tokens and
// the segment editor to the /projects group (session and CSRF checked there).
func (s *Server) registerAdmin(g *echo.Group) {

	g.GET("/new", s.newProjectPage)
	g.POST("", s.createProject)
	g.GET("/:project/environments", s.environmentsPage, s.member(identity.RoleViewer))
	g.POST("/:project/environments", s.createEnvironment, s.member(identity.RoleAdmin))
	g.POST("/:project/settings", s.updateProject, s.member(identity.RoleAdmin))
	g.GET("/:project/environments/:environment", s.environmentPage, s.member(identity.RoleViewer))
	g.POST("/:project/environments/:environment", s.updateEnvironment, s.member(identity.RoleAdmin))
	g.POST("/:project/environments/:environment/rotate", s.rotateKey, s.member(identity.RoleAdmin))

	g.GET("/:project/members", s.membersPage, s.member(identity.RoleAdmin))
	g.POST("/:project/members", s.addMember, s.member(identity.RoleAdmin))
	g.POST("/:project/members/:user", s.setMember, s.member(identity.RoleAdmin))
	g.GET("/:project/tokens", s.tokensPage, s.member(identity.RoleAdmin))
	g.POST("/:project/tokens", s.createToken, s.member(identity.RoleAdmin))
	g.POST("/:project/tokens/:id/revoke", s.revokeToken, s.member(identity.RoleAdmin))
	g.GET("/:project/audit/accounts", s.accountAuditPage, s.member(identity.RoleAdmin))

	g.GET("/:project/flags/:flag/environments/:environment/switch", s.switchPartial, s.member(identity.RoleViewer))

	g.GET("/:project/segments/new", s.newSegmentPage, s.member(identity.RoleEditor))
	g.POST("/:project/segments", s.createSegment, s.member(identity.RoleEditor))
	g.GET("/:project/segments/:segment", s.segmentPage, s.member(identity.RoleViewer))
	g.POST("/:project/segments/:segment", s.saveSegment, s.member(identity.RoleEditor))
}
