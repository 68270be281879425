module github.com/vexil-flags/vexil/sdk/go

go 1.26.0

require (
	github.com/open-feature/go-sdk v1.15.1
	github.com/vexil-flags/vexil v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

require (
	github.com/go-logr/logr v1.4.4 // indirect
	go.uber.org/mock v0.5.2 // indirect
)

// The SDK evaluates with the server's own evaluator (domain/evaluation of the root module). In
// this repository it builds against the working tree; a release tags the root module and
// sdk/go together, and an application requires both tags (see docs/sdk.md).
replace github.com/vexil-flags/vexil => ../..
