module github.com/vexil-flags/vexil/sdk/go/examples/quickstart

go 1.26.0

require (
	github.com/open-feature/go-sdk v1.15.1
	github.com/vexil-flags/vexil/sdk/go v0.0.0-00010101000000-000000000000
)

require (
	github.com/go-logr/logr v1.4.4 // indirect
	github.com/vexil-flags/vexil v0.0.0-00010101000000-000000000000 // indirect
	go.uber.org/mock v0.5.2 // indirect
)

// In this repository the example builds against the working tree. An application outside it
// requires released versions instead (docs/sdk.md) and needs no replace directive.
replace (
	github.com/vexil-flags/vexil => ../../../..
	github.com/vexil-flags/vexil/sdk/go => ../..
)
