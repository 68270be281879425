package platform_test

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The authorization model, stated once here and independently of the code that enforces it
// (services/roles/console/policy.go):
//   - without a valid token (none, unknown, revoked) every operation but the OpenAPI document
//     answers 401;
//   - a token's scope must reach the operation's scope (read < write < admin), else 403;
//   - a token restricted to a project reaches only that project: a project operation on another
//     project is 403, an instance-wide operation is 403, a listing shows only its project's items;
//   - a token operation (create, revoke) is allowed only on a token within the caller's project
//     (a restricted caller never on an unrestricted token) and scope (never a higher scope).
//
// The matrix is generated from the OpenAPI document, itself generated from the route table, so a
// route is covered the day it is added: every operation × every kind of principal × project A, B
// (project operations) or every target token (token operations).

// matrixOp is an operation of the management API with who may call it.
type matrixOp struct {
	method, path string
	scope, reach string // x-vexil-scope, x-vexil-reach ("" for the public document)
	body         bool   // takes a JSON request body
}

// matrixPrincipal is a kind of caller.
type matrixPrincipal struct {
	name    string
	token   string
	valid   bool   // a live token (not none, unknown or revoked)
	scope   string // of a valid token
	project string // "" for unrestricted
}

var scopeRank = map[string]int{"read": 1, "write": 2, "admin": 3}

// expected is the model's answer: 401, 403 or 0 for allowed. project is the {project} of a project
// operation; targetProject and targetScope describe the token a token operation acts on.
func expected(p matrixPrincipal, op matrixOp, project, targetProject, targetScope string) int {
	switch {
	case op.reach == "":
		return 0
	case !p.valid:
		return 401
	case scopeRank[p.scope] < scopeRank[op.scope]:
		return 403
	}
	restricted := p.project != ""
	switch op.reach {
	case "project":
		if restricted && project != p.project {
			return 403
		}
	case "instance":
		if restricted {
			return 403
		}
	case "listing":
	case "token":
		if restricted && targetProject != p.project || scopeRank[p.scope] < scopeRank[targetScope] {
			return 403
		}
	default:
		return -1 // an unknown reach: the test fails on it
	}
	return 0
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func TestAuthorizationMatrixOfEveryRoute(t *testing.T) {
	t.Parallel()
	root := startVexil(t)
	const projA, projB = "alpha", "beta"
	for _, p := range []string{projA, projB} {
		root.must(201, "POST", "/api/v1/projects", map[string]any{"key": p, "name": p})
	}
	issue := func(name, scope, project string) map[string]any {
		body := map[string]any{"name": name, "scope": scope}
		if project != "" {
			body["project"] = project
		}
		return root.must(201, "POST", "/api/v1/tokens", body)
	}

	principals := []matrixPrincipal{
		{name: "no token"},
		{name: "unknown token", token: "vxl_this-token-was-never-issued-0000000000"},
	}
	revoked := issue("revoked admin", "admin", "")
	root.must(200, "DELETE", "/api/v1/tokens/"+revoked["id"].(string), nil)
	principals = append(principals, matrixPrincipal{name: "revoked admin", token: revoked["token"].(string)})
	for _, project := range []string{"", projA} {
		for _, scope := range []string{"read", "write", "admin"} {
			name := scope + " unrestricted"
			if project != "" {
				name = scope + " restricted to " + project
			}
			tok := issue(name, scope, project)
			principals = append(principals, matrixPrincipal{name: name, token: tok["token"].(string), valid: true, scope: scope, project: project})
		}
	}

	// Tokens that token operations act on: one per project (A, B, unrestricted) and scope.
	type target struct{ project, scope, id string }
	var targets []target
	for _, project := range []string{projA, projB, ""} {
		for _, scope := range []string{"read", "write", "admin"} {
			tok := issue("target", scope, project)
			targets = append(targets, target{project, scope, tok["id"].(string)})
		}
	}

	ops := matrixOperations(t, root)
	known := map[string]string{"project": "", "environment": "production", "kind": "server"}
	requests := 0
	for _, op := range ops {
		t.Run(op.method+" "+op.path, func(t *testing.T) {
			type variant struct{ project, targetProject, targetScope, path string }
			var variants []variant
			fill := func(project, id string) string {
				return pathParam.ReplaceAllStringFunc(op.path, func(m string) string {
					switch name := m[1 : len(m)-1]; {
					case name == "project":
						return project
					case name == "id" && op.reach == "token":
						return id
					case known[name] != "":
						return known[name]
					default:
						return "none" // a key nothing has: allowed callers get 404 or 400
					}
				})
			}
			switch op.reach {
			case "project":
				variants = []variant{{project: projA, path: fill(projA, "")}, {project: projB, path: fill(projB, "")}}
			case "token":
				for _, tg := range targets {
					variants = append(variants, variant{targetProject: tg.project, targetScope: tg.scope, path: fill("", tg.id)})
				}
			default:
				variants = []variant{{path: fill("", "")}}
			}
			for _, v := range variants {
				for _, p := range principals {
					var body any
					switch {
					case op.reach == "token" && op.body:
						b := map[string]any{"name": "matrix", "scope": v.targetScope}
						if v.targetProject != "" {
							b["project"] = v.targetProject
						}
						body = b
					case op.body:
						body = "{}"
					}
					r := root.as(p.token).do(op.method, v.path, body)
					requests++
					want := expected(p, op, v.project, v.targetProject, v.targetScope)
					desc := fmt.Sprintf("%s %s as %s", op.method, v.path, p.name)
					if op.reach == "token" {
						desc += fmt.Sprintf(" on a %s token of project %q", v.targetScope, v.targetProject)
					}
					checkOutcome(t, desc, want, r, p, op)
				}
			}
		})
	}
	t.Logf("%d operations, %d principals, %d requests", len(ops), len(principals), requests)
}

// checkOutcome asserts one answer against the model's want (401, 403 or 0 for allowed).
func checkOutcome(t *testing.T, desc string, want int, r response, p matrixPrincipal, op matrixOp) {
	t.Helper()
	switch want {
	case 401, 403:
		code := map[int]string{401: "unauthorized", 403: "forbidden"}[want]
		if r.Status != want {
			t.Errorf("%s: status %d, want %d: %s", desc, r.Status, want, r.Body)
		} else if b := r.JSON(t); b["code"] != code {
			t.Errorf("%s: error %v, want code %s", desc, b, code)
		}
	case 0:
		if r.Status == 401 || r.Status == 403 || r.Status >= 500 {
			t.Errorf("%s: status %d, want it allowed: %s", desc, r.Status, r.Body)
			return
		}
		switch {
		case op.reach == "token" && op.method == "POST" && r.Status != 201:
			t.Errorf("%s: status %d, want 201: %s", desc, r.Status, r.Body)
		case op.reach == "token" && op.method == "DELETE" && r.Status != 200 && r.Status != 409: // 409: revoked before
			t.Errorf("%s: status %d, want 200 or 409: %s", desc, r.Status, r.Body)
		case op.reach == "listing":
			if r.Status != 200 {
				t.Errorf("%s: status %d, want 200: %s", desc, r.Status, r.Body)
				return
			}
			if p.project == "" {
				return
			}
			for _, it := range items(t, r.JSON(t)) {
				if it["project"] != p.project && it["key"] != p.project {
					t.Errorf("%s: a token restricted to %s sees %v", desc, p.project, it)
				}
			}
		}
	default:
		t.Errorf("%s: the model has no answer for reach %q", desc, op.reach)
	}
}

// matrixOperations reads every operation, with its scope and reach, from the served OpenAPI document.
func matrixOperations(t *testing.T, v *vexil) []matrixOp {
	t.Helper()
	doc := v.as("").must(200, "GET", "/api/v1/openapi.json", nil)
	paths, _ := doc["paths"].(map[string]any)
	var ops []matrixOp
	for path, item := range paths {
		for method, raw := range item.(map[string]any) {
			op := raw.(map[string]any)
			scope, _ := op["x-vexil-scope"].(string)
			reach, _ := op["x-vexil-reach"].(string)
			if (scope == "") != (op["security"] == nil) || (scope == "") != (reach == "") {
				t.Fatalf("%s %s: security %v, x-vexil-scope %q, x-vexil-reach %q", method, path, op["security"], scope, reach)
			}
			_, body := op["requestBody"]
			ops = append(ops, matrixOp{method: strings.ToUpper(method), path: path, scope: scope, reach: reach, body: body})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	if len(ops) < 80 {
		t.Fatalf("only %d operations in the OpenAPI document", len(ops))
	}
	return ops
}
